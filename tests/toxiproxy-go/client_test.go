// Drives a Toxiproxy API server with the official Go client
// (github.com/Shopify/toxiproxy/v2/client at v2.12.0) through every endpoint and every
// toxic type, and checks the effect of each toxic on real traffic through the proxy.
// The same test passes against toxiproxy-server and `rift toxiproxy`: set
// TOXIPROXY_URL (e.g. http://127.0.0.1:8474) to choose the server.
package toxiproxygo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

func client(t *testing.T) *toxiproxy.Client {
	t.Helper()
	url := os.Getenv("TOXIPROXY_URL")
	if url == "" {
		t.Fatal("TOXIPROXY_URL is not set: point it at a running Toxiproxy API (rift toxiproxy or toxiproxy-server)")
	}
	c := toxiproxy.NewClient(url)
	if err := c.ResetState(); err != nil {
		t.Fatalf("reset: %v", err)
	}
	proxies, err := c.Proxies()
	if err != nil {
		t.Fatalf("proxies: %v", err)
	}
	for _, p := range proxies {
		if err := p.Delete(); err != nil {
			t.Fatalf("delete %s: %v", p.Name, err)
		}
	}
	return c
}

// echoServer echoes every byte and closes its write side after the client's FIN.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
				conn.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// roundTrip writes data and reads it back through the echo server.
func roundTrip(t *testing.T, conn net.Conn, data []byte) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	go conn.Write(data)
	back := make([]byte, len(data))
	if _, err := io.ReadFull(conn, back); err != nil {
		t.Fatalf("round trip of %d bytes: %v", len(data), err)
	}
	if !bytes.Equal(back, data) {
		t.Fatalf("round trip changed the bytes")
	}
	return time.Since(start)
}

// readToEnd reads until EOF or an error and returns what was read and the error.
func readToEnd(conn net.Conn, limit time.Duration) ([]byte, error) {
	conn.SetReadDeadline(time.Now().Add(limit))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

func apiStatus(t *testing.T, err error) int {
	t.Helper()
	var apiErr *toxiproxy.ApiError
	if !errors.As(err, &apiErr) {
		t.Fatalf("expected an API error, got %v", err)
	}
	return apiErr.Status
}

func TestVersionIsAtLeast212(t *testing.T) {
	c := client(t)
	raw, err := c.Version()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version string }
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("version %q: %v", raw, err)
	}
	parts := strings.SplitN(v.Version, ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	if major < 2 || (major == 2 && minor < 12) {
		t.Fatalf("version %q is older than 2.12", v.Version)
	}
}

func TestProxyEndpoints(t *testing.T) {
	c := client(t)
	echo := echoServer(t)
	p, err := c.CreateProxy("echo", "127.0.0.1:0", echo)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(p.Listen, ":0") || !p.Enabled {
		t.Fatalf("created proxy: %+v", p)
	}
	conn := dial(t, p.Listen)
	roundTrip(t, conn, []byte("hello"))

	if _, err := c.CreateProxy("echo", "127.0.0.1:0", echo); apiStatus(t, err) != 409 {
		t.Fatalf("duplicate proxy: %v", err)
	}
	if _, err := c.Proxy("missing"); apiStatus(t, err) != 404 {
		t.Fatalf("unknown proxy: %v", err)
	}
	all, err := c.Proxies()
	if err != nil || len(all) != 1 || all["echo"].Listen != p.Listen {
		t.Fatalf("proxies: %v %v", all, err)
	}

	// Disable closes the listener and live connections; enable reuses the address.
	listen := p.Listen
	if err := p.Disable(); err != nil {
		t.Fatal(err)
	}
	if _, err := readToEnd(conn, 5*time.Second); err != nil && !isReset(err) {
		t.Fatalf("connection not closed by disable: %v", err)
	}
	if c2, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c2.Close()
		t.Fatal("a disabled proxy still accepts connections")
	}
	if err := p.Enable(); err != nil {
		t.Fatal(err)
	}
	if p.Listen != listen {
		t.Fatalf("listen moved from %s to %s", listen, p.Listen)
	}
	roundTrip(t, dial(t, p.Listen), []byte("back"))

	// Port already in use.
	if _, err := c.CreateProxy("clash", listen, echo); err == nil {
		t.Fatal("a second proxy bound an address in use")
	} else if apiStatus(t, err) != 500 {
		t.Fatalf("port in use: %v", err)
	}

	shown, err := c.Proxy("echo")
	if err != nil || shown.Upstream != echo || shown.Listen != listen {
		t.Fatalf("show: %+v %v", shown, err)
	}
	if err := shown.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := shown.Delete(); apiStatus(t, err) != 404 {
		t.Fatalf("second delete: %v", err)
	}
}

func TestPopulateAndReset(t *testing.T) {
	c := client(t)
	echo := echoServer(t)
	proxies, err := c.Populate([]toxiproxy.Proxy{
		{Name: "one", Listen: "127.0.0.1:0", Upstream: echo, Enabled: true},
		{Name: "two", Listen: "127.0.0.1:0", Upstream: echo, Enabled: true},
	})
	if err != nil || len(proxies) != 2 {
		t.Fatalf("populate: %v %v", proxies, err)
	}
	one := proxies[0]
	if _, err := one.AddToxic("", "latency", "", 1, toxiproxy.Attributes{"latency": 10}); err != nil {
		t.Fatal(err)
	}
	// Unchanged entries are kept (with their toxics).
	again, err := c.Populate([]toxiproxy.Proxy{{Name: "one", Listen: one.Listen, Upstream: echo, Enabled: true}})
	if err != nil || len(again) != 1 || len(again[0].ActiveToxics) != 1 {
		t.Fatalf("populate again: %+v %v", again, err)
	}
	if _, err := c.Populate([]toxiproxy.Proxy{{Name: "bad"}}); apiStatus(t, err) != 400 {
		t.Fatalf("populate without upstream: %v", err)
	}
	two, _ := c.Proxy("two")
	if err := two.Disable(); err != nil {
		t.Fatal(err)
	}
	if err := c.ResetState(); err != nil {
		t.Fatal(err)
	}
	all, err := c.Proxies()
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range all {
		if !p.Enabled || len(p.ActiveToxics) != 0 {
			t.Fatalf("after reset %s: enabled %v toxics %v", name, p.Enabled, p.ActiveToxics)
		}
	}
}

func TestToxicEndpoints(t *testing.T) {
	c := client(t)
	p, err := c.CreateProxy("tox", "127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	types := []struct {
		kind  string
		attrs toxiproxy.Attributes
	}{
		{"latency", toxiproxy.Attributes{"latency": 10, "jitter": 1}},
		{"bandwidth", toxiproxy.Attributes{"rate": 1000}},
		{"slow_close", toxiproxy.Attributes{"delay": 10}},
		{"timeout", toxiproxy.Attributes{"timeout": 1000}},
		{"reset_peer", toxiproxy.Attributes{"timeout": 1000}},
		{"slicer", toxiproxy.Attributes{"average_size": 10, "size_variation": 5, "delay": 10}},
		{"limit_data", toxiproxy.Attributes{"bytes": 1000}},
		{"noop", toxiproxy.Attributes{}},
	}
	for _, stream := range []string{"upstream", "downstream"} {
		for _, tt := range types {
			toxic, err := p.AddToxic("", tt.kind, stream, 0.5, tt.attrs)
			if err != nil {
				t.Fatalf("add %s %s: %v", tt.kind, stream, err)
			}
			want := tt.kind + "_" + stream
			if toxic.Name != want || toxic.Stream != stream || toxic.Toxicity != 0.5 {
				t.Fatalf("added %+v, want name %s", toxic, want)
			}
			for k, v := range tt.attrs {
				if fmt.Sprint(toxic.Attributes[k]) != fmt.Sprint(v) {
					t.Fatalf("%s attribute %s = %v, want %v", want, k, toxic.Attributes[k], v)
				}
			}
		}
	}
	list, err := p.Toxics()
	if err != nil || len(list) != 16 {
		t.Fatalf("toxics: %d %v", len(list), err)
	}
	if list[0].Stream != "upstream" || list[15].Stream != "downstream" {
		t.Fatalf("upstream toxics come first: %+v", list)
	}
	// Defaults: downstream, toxicity 1.
	def, err := c.AddToxic(&toxiproxy.ToxicOptions{ProxyName: "tox", ToxicName: "plain", ToxicType: "noop", Toxicity: -1})
	if err != nil || def.Stream != "downstream" || def.Toxicity != 1 {
		t.Fatalf("defaults: %+v %v", def, err)
	}
	// Partial update keeps the attributes not sent.
	up, err := p.UpdateToxic("latency_upstream", -1, toxiproxy.Attributes{"jitter": 3})
	if err != nil || fmt.Sprint(up.Attributes["latency"]) != "10" || fmt.Sprint(up.Attributes["jitter"]) != "3" || up.Toxicity != 0.5 {
		t.Fatalf("partial update: %+v %v", up, err)
	}
	up, err = c.UpdateToxic(&toxiproxy.ToxicOptions{ProxyName: "tox", ToxicName: "latency_upstream", Toxicity: 1, Attributes: toxiproxy.Attributes{}})
	if err != nil || up.Toxicity != 1 || fmt.Sprint(up.Attributes["jitter"]) != "3" {
		t.Fatalf("toxicity update: %+v %v", up, err)
	}
	// Errors.
	if _, err := p.AddToxic("latency_upstream", "latency", "downstream", 1, nil); apiStatus(t, err) != 409 {
		t.Fatalf("duplicate toxic: %v", err)
	}
	if _, err := p.AddToxic("x", "latency", "sideways", 1, nil); apiStatus(t, err) != 400 {
		t.Fatalf("wrong stream: %v", err)
	}
	if _, err := p.AddToxic("y", "packet_loss", "upstream", 1, nil); apiStatus(t, err) != 400 {
		t.Fatalf("unknown toxic type: %v", err)
	}
	if _, err := p.UpdateToxic("nope", 1, nil); apiStatus(t, err) != 404 {
		t.Fatalf("update unknown toxic: %v", err)
	}
	if err := p.RemoveToxic("nope"); apiStatus(t, err) != 404 {
		t.Fatalf("remove unknown toxic: %v", err)
	}
	if _, err := c.AddToxic(&toxiproxy.ToxicOptions{ProxyName: "missing", ToxicType: "noop"}); err == nil {
		t.Fatal("toxic on an unknown proxy")
	}
	if err := c.RemoveToxic(&toxiproxy.ToxicOptions{ProxyName: "tox", ToxicName: "plain"}); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveToxic("latency_upstream"); err != nil {
		t.Fatal(err)
	}
	list, _ = p.Toxics()
	if len(list) != 15 {
		t.Fatalf("after removals: %d toxics", len(list))
	}
}

func newProxy(t *testing.T, c *toxiproxy.Client) *toxiproxy.Proxy {
	t.Helper()
	p, err := c.CreateProxy(strings.ReplaceAll(t.Name(), "/", "_"), "127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLatencyOnALiveConnection(t *testing.T) {
	c := client(t)
	p := newProxy(t, c)
	conn := dial(t, p.Listen)
	roundTrip(t, conn, []byte("warm"))
	if _, err := p.AddToxic("", "latency", "upstream", 1, toxiproxy.Attributes{"latency": 200}); err != nil {
		t.Fatal(err)
	}
	if d := roundTrip(t, conn, []byte("slow")); d < 200*time.Millisecond {
		t.Fatalf("latency not added on a live connection: %v", d)
	}
	if err := p.RemoveToxic("latency_upstream"); err != nil {
		t.Fatal(err)
	}
	best := time.Hour
	for i := 0; i < 3; i++ {
		if d := roundTrip(t, conn, []byte("fast")); d < best {
			best = d
		}
	}
	if best >= 100*time.Millisecond {
		t.Fatalf("latency not removed: %v", best)
	}
}

func TestBandwidthLimitsAndRateZeroStallsThenReleases(t *testing.T) {
	c := client(t)
	p := newProxy(t, c)
	conn := dial(t, p.Listen)
	if _, err := p.AddToxic("bw", "bandwidth", "downstream", 1, toxiproxy.Attributes{"rate": 100}); err != nil {
		t.Fatal(err)
	}
	// 50 KB at 100 KB/s: about half a second.
	if d := roundTrip(t, conn, pattern(50_000)); d < 350*time.Millisecond {
		t.Fatalf("bandwidth not limited: 50 KB in %v", d)
	}
	if _, err := p.UpdateToxic("bw", 1, toxiproxy.Attributes{"rate": 0}); err != nil {
		t.Fatal(err)
	}
	data := pattern(100_000)
	go conn.Write(data)
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, len(data))
	if n, err := conn.Read(buf); err == nil || n > 0 {
		t.Fatalf("rate 0 let %d bytes through (%v)", n, err)
	}
	if err := p.RemoveToxic("bw"); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("stalled bytes not delivered after removal: %v", err)
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

func TestResetPeerResets(t *testing.T) {
	c := client(t)
	p := newProxy(t, c)
	if _, err := p.AddToxic("", "reset_peer", "upstream", 1, toxiproxy.Attributes{"timeout": 100}); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, p.Listen)
	conn.Write([]byte("x"))
	if _, err := readToEnd(conn, 5*time.Second); !isReset(err) {
		t.Fatalf("reset_peer: want ECONNRESET, got %v", err)
	}
}

func TestTimeoutHoldsThenClosesOnRemoval(t *testing.T) {
	c := client(t)
	p := newProxy(t, c)
	conn := dial(t, p.Listen)
	roundTrip(t, conn, []byte("warm"))
	if _, err := p.AddToxic("", "timeout", "upstream", 1, toxiproxy.Attributes{"timeout": 0}); err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("lost"))
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 4)); n > 0 || !isTimeout(err) {
		t.Fatalf("timeout 0 must hold the connection: %d %v", n, err)
	}
	if err := p.RemoveToxic("timeout_upstream"); err != nil {
		t.Fatal(err)
	}
	if got, err := readToEnd(conn, 5*time.Second); len(got) > 0 || (err != nil && !isReset(err)) {
		t.Fatalf("removing timeout must close the connection: %q %v", got, err)
	}
	// A timeout > 0 closes by itself.
	if _, err := p.AddToxic("", "timeout", "downstream", 1, toxiproxy.Attributes{"timeout": 100}); err != nil {
		t.Fatal(err)
	}
	conn = dial(t, p.Listen)
	start := time.Now()
	if _, err := readToEnd(conn, 5*time.Second); err != nil && !isReset(err) {
		t.Fatalf("timeout 100: %v", err)
	}
	if time.Since(start) < 90*time.Millisecond {
		t.Fatalf("closed before the timeout: %v", time.Since(start))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestLimitDataClosesAfterBytes(t *testing.T) {
	c := client(t)
	p := newProxy(t, c)
	if _, err := p.AddToxic("", "limit_data", "downstream", 1, toxiproxy.Attributes{"bytes": 1000}); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, p.Listen)
	data := pattern(5000)
	go conn.Write(data)
	got, err := readToEnd(conn, 5*time.Second)
	if err != nil && !isReset(err) {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[:1000]) {
		t.Fatalf("limit_data 1000 delivered %d bytes", len(got))
	}
}

func TestSlicerAndSlowCloseKeepEveryByte(t *testing.T) {
	c := client(t)
	p := newProxy(t, c)
	if _, err := p.AddToxic("", "slicer", "downstream", 1, toxiproxy.Attributes{"average_size": 64, "size_variation": 32, "delay": 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddToxic("", "slow_close", "downstream", 1, toxiproxy.Attributes{"delay": 300}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddToxic("", "noop", "upstream", 1, nil); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, p.Listen)
	roundTrip(t, conn, pattern(20_000))
	start := time.Now()
	conn.(*net.TCPConn).CloseWrite()
	if got, err := readToEnd(conn, 5*time.Second); err != nil || len(got) > 0 {
		t.Fatalf("close: %q %v", got, err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("slow_close 300 ms closed after %v", time.Since(start))
	}
}
