// k8scheck decodes every object of a rendered Helm chart (a multi-document YAML stream
// on stdin, as `helm template` prints it) strictly against the Kubernetes API types:
// an unknown kind, an unknown or duplicated field, or a value of the wrong type is an
// error naming the document, the object and the field. It needs no cluster.
//
//	helm template rift deploy/kubernetes/rift | k8scheck
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

func main() {
	objects, err := check(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8scheck:", err)
		os.Exit(1)
	}
	if objects == 0 {
		fmt.Fprintln(os.Stderr, "k8scheck: no object in the input")
		os.Exit(1)
	}
	fmt.Printf("k8scheck: %d objects decoded strictly\n", objects)
}

// check decodes every document of r and reports each object on out; it returns how many
// objects it decoded, or every problem found.
func check(r io.Reader, out io.Writer) (int, error) {
	// Strict: unknown fields and duplicate fields are errors, not silently dropped.
	decoder := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: false, Strict: true})
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var problems []error
	objects := 0
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return objects, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		origin := sourceOf(raw, doc)
		// YAMLToJSONStrict rejects duplicate keys, which a plain conversion would merge.
		js, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", origin, err))
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(js, &meta); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", origin, err))
			continue
		}
		gvk := schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)
		if !scheme.Scheme.Recognizes(gvk) {
			problems = append(problems, fmt.Errorf("%s: %s %q: apiVersion %q kind %q is not a Kubernetes API type",
				origin, meta.Kind, meta.Metadata.Name, meta.APIVersion, meta.Kind))
			continue
		}
		obj, _, err := decoder.Decode(js, &gvk, nil)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %s %q: %w", origin, meta.Kind, meta.Metadata.Name, err))
			continue
		}
		if _, ok := obj.(runtime.Object); !ok {
			problems = append(problems, fmt.Errorf("%s: %s %q: decoded to no object", origin, meta.Kind, meta.Metadata.Name))
			continue
		}
		objects++
		fmt.Fprintf(out, "ok %s %s/%s (%s)\n", origin, meta.Kind, meta.Metadata.Name, gvk.GroupVersion())
	}
	return objects, errors.Join(problems...)
}

// sourceOf names a document by the template Helm rendered it from ("# Source: ...").
func sourceOf(raw []byte, doc int) string {
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("# Source: ")); ok {
			return fmt.Sprintf("document %d (%s)", doc, rest)
		}
	}
	return fmt.Sprintf("document %d", doc)
}

func stripComments(raw []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(raw, []byte("\n")) {
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 || trimmed[0] == '#' || bytes.Equal(trimmed, []byte("---")) {
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}
