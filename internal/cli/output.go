package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/spf13/cobra"
)

// Output formats of -o/--output, a flag of every command.
const (
	formatText = "text"
	formatJSON = "json"
)

// registerOutput adds -o/--output to root, for every command below it.
func registerOutput(root *cobra.Command, e *env) {
	root.PersistentFlags().StringVarP(&e.format, "output", "o", formatText, "output format: text, or json for scripts (errors too)")
	root.PersistentFlags().BoolVarP(&e.verbose, "verbose", "v", false, "log what ladder does, on stderr (upgrade: as --log-level info)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{formatText, formatJSON}, cobra.ShellCompDirectiveNoFileComp))
}

// checkOutput refuses an unknown format.
func (e *env) checkOutput() error {
	if e.format != formatText && e.format != formatJSON {
		f := e.format
		e.format = formatText
		return usageErr("invalid --output %q: use text or json", f)
	}
	return nil
}

// json reports whether the command prints JSON.
func (e *env) json() bool { return e.format == formatJSON }

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// errorJSON is how a command that prints JSON reports its failure, on
// stdout: what went wrong, what to do, and the exit code.
type errorJSON struct {
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"`
	Exit  int    `json:"exit"`
}

// jsonDecode decodes a response's JSON body into v.
func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v)
}
