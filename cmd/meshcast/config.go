package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// applyConfigFile reads a YAML config file into the command's flags: every
// key is a flag's name with '_' for '-', so every field of the file is also
// a flag and the two are documented once. A flag given on the command line
// wins over the file. Unknown keys and bad values are errors that name the
// file, the line and the key.
func applyConfigFile(cmd *cobra.Command, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return nil // empty file
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s:%d: want a mapping of keys to values", path, doc.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		fail := func(format string, args ...any) error {
			return fmt.Errorf("config %s:%d: %s: %s", path, k.Line, k.Value, fmt.Sprintf(format, args...))
		}
		name := strings.ReplaceAll(k.Value, "_", "-")
		f := cmd.Flags().Lookup(name)
		if f == nil || name == "config" || name == "help" {
			return fail("unknown key")
		}
		if seen[name] {
			return fail("given twice")
		}
		seen[name] = true
		if f.Changed {
			continue
		}
		var vals []string
		switch v.Kind {
		case yaml.ScalarNode:
			vals = []string{v.Value}
		case yaml.SequenceNode:
			if !strings.HasSuffix(f.Value.Type(), "Array") && !strings.HasSuffix(f.Value.Type(), "Slice") {
				return fail("takes one value, not a list")
			}
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return fail("list items must be plain values")
				}
				vals = append(vals, item.Value)
			}
		default:
			return fail("want a value or a list of values")
		}
		for _, val := range vals {
			if err := f.Value.Set(val); err != nil {
				return fail("%v", errors.Unwrap(err))
			}
		}
		f.Changed = true
	}
	return nil
}
