// Command porcupine-bench checks rift history files (history.jsonl) with porcupine,
// the reference linearizability checker, so rift-linbench can compare verdicts and
// times on the same histories. It applies rift's rules for the register model: failed
// operations are left out, reads that did not complete ok are left out, serializable
// reads are left out, and writes and cas that completed info or never completed return
// at +infinity with an unknown outcome (porcupine's treatment of indeterminate calls).
//
// Usage: porcupine-bench -runs N FILE...; one JSON object a line per file on stdout.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

type line struct {
	Process     *json.RawMessage `json:"process"`
	Type        string           `json:"type"`
	F           string           `json:"f"`
	Key         *json.RawMessage `json:"key"`
	Value       *json.RawMessage `json:"value"`
	Time        int64            `json:"time"`
	Consistency string           `json:"consistency"`
}

type input struct {
	key  string
	op   uint8 // 0 read, 1 write, 2 cas
	arg1 *int64
	arg2 *int64
}

type output struct {
	value   *int64 // what a read returned
	unknown bool
}

func eq(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return (*int64)(nil) },
	Step: func(state, in, out interface{}) (bool, interface{}) {
		st := state.(*int64)
		inp := in.(input)
		o := out.(output)
		switch inp.op {
		case 0:
			return eq(st, o.value), st
		case 1:
			return true, inp.arg1
		default:
			if eq(st, inp.arg1) {
				return true, inp.arg2
			}
			return o.unknown, st
		}
	},
	Equal: func(a, b interface{}) bool { return eq(a.(*int64), b.(*int64)) },
}

func intOrNull(raw *json.RawMessage) (*int64, error) {
	if raw == nil || string(*raw) == "null" {
		return nil, nil
	}
	var v int64
	if err := json.Unmarshal(*raw, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func load(path string) ([]porcupine.Operation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type open struct {
		l   line
		idx int
	}
	var ops []porcupine.Operation
	keep := []bool{}
	pending := map[string]open{}
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; scanner.Scan(); n++ {
		var l line
		if err := json.Unmarshal(scanner.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		if l.Process == nil || string(*l.Process) == `"nemesis"` || l.Type == "" {
			continue
		}
		proc := string(*l.Process)
		if l.Type == "invoke" {
			key := ""
			if l.Key != nil {
				key = string(*l.Key)
			}
			in := input{key: key}
			switch l.F {
			case "read":
				in.op = 0
			case "write":
				in.op = 1
				if in.arg1, err = intOrNull(l.Value); err != nil {
					return nil, fmt.Errorf("%s:%d: %v", path, n, err)
				}
			case "cas":
				var pair []*json.RawMessage
				if err := json.Unmarshal(*l.Value, &pair); err != nil || len(pair) != 2 {
					return nil, fmt.Errorf("%s:%d: cas value", path, n)
				}
				in.op = 2
				in.arg1, _ = intOrNull(pair[0])
				in.arg2, _ = intOrNull(pair[1])
			default:
				return nil, fmt.Errorf("%s:%d: f %q", path, n, l.F)
			}
			pending[proc] = open{l, len(ops)}
			ops = append(ops, porcupine.Operation{
				ClientId: len(pending), Input: in, Call: l.Time,
				Output: output{unknown: true}, Return: math.MaxInt64,
			})
			keep = append(keep, in.op != 0)
			continue
		}
		o, ok := pending[proc]
		if !ok {
			return nil, fmt.Errorf("%s:%d: completion without invocation", path, n)
		}
		delete(pending, proc)
		op := &ops[o.idx]
		switch {
		case l.Type == "fail":
			keep[o.idx] = false
		case l.Type == "ok":
			if op.Input.(input).op == 0 {
				if l.Consistency == "serializable" || o.l.Consistency == "serializable" {
					continue
				}
				v, err := intOrNull(l.Value)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %v", path, n, err)
				}
				op.Output = output{value: v}
				keep[o.idx] = true
			} else {
				op.Output = output{}
			}
			op.Return = l.Time
		}
	}
	var out []porcupine.Operation
	for i, op := range ops {
		if keep[i] {
			out = append(out, op)
		}
	}
	return out, scanner.Err()
}

func main() {
	runs := flag.Int("runs", 5, "checks per file (the median is reported)")
	timeout := flag.Duration("timeout", 60*time.Second, "per check")
	flag.Parse()
	for _, path := range flag.Args() {
		ops, err := load(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var plain, verbose []int64
		result := ""
		for r := 0; r < *runs; r++ {
			start := time.Now()
			res := porcupine.CheckOperationsTimeout(registerModel, ops, *timeout)
			plain = append(plain, time.Since(start).Nanoseconds())
			start = time.Now()
			porcupine.CheckOperationsVerbose(registerModel, ops, *timeout)
			verbose = append(verbose, time.Since(start).Nanoseconds())
			switch res {
			case porcupine.Ok:
				result = "PASS"
			case porcupine.Illegal:
				result = "FAIL"
			default:
				result = "UNKNOWN"
			}
		}
		sort.Slice(plain, func(i, j int) bool { return plain[i] < plain[j] })
		sort.Slice(verbose, func(i, j int) bool { return verbose[i] < verbose[j] })
		out, _ := json.Marshal(map[string]interface{}{
			"file": path, "ops": len(ops), "verdict": result,
			"check_ns": plain[len(plain)/2], "verbose_ns": verbose[len(verbose)/2],
		})
		fmt.Println(string(out))
	}
}
