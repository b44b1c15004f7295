package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/ladder-dev/ladder/upgrade"
)

// reporter shows engine events: log lines with level and seconds since
// start, a live bar on a terminal, or JSON lines for scripts.
type reporter struct {
	mu      sync.Mutex
	start   time.Time
	out     io.Writer // log lines (above the bar on a terminal)
	jsonOut *json.Encoder
	bars    *mpb.Progress
	bar     *mpb.Bar
	total   int
	current string
	// onEvent, when set, sees every event after it is shown.
	onEvent func(upgrade.Event)
}

// newReporter picks the form: JSON events on stdout with -o json, a live
// bar on a terminal stderr, plain lines otherwise.
func newReporter(e *env, jsonOut bool, totalSteps int) *reporter {
	r := &reporter{start: time.Now(), out: e.stderr, total: totalSteps}
	if jsonOut {
		r.jsonOut = json.NewEncoder(e.stdout)
		return r
	}
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && totalSteps > 0 {
		r.startBar(f)
	}
	return r
}

// startBar shows the live bar of the steps on the terminal f.
func (r *reporter) startBar(f *os.File) {
	r.bars = mpb.New(mpb.WithOutput(f), mpb.WithWidth(32), mpb.WithRefreshRate(150*time.Millisecond))
	r.bar = r.bars.AddBar(int64(r.total),
		mpb.PrependDecorators(decor.Name("upgrade "), decor.CountersNoUnit("%d/%d steps ")),
		mpb.AppendDecorators(decor.Elapsed(decor.ET_STYLE_GO), decor.Any(func(decor.Statistics) string {
			r.mu.Lock()
			defer r.mu.Unlock()
			return "  " + r.current
		})),
	)
	r.out = r.bars
}

// setTotal sets the number of steps, and shows the live bar when the
// output is a terminal.
func (r *reporter) setTotal(totalSteps int) {
	r.total = totalSteps
	f, ok := r.out.(*os.File)
	if r.jsonOut != nil || r.bars != nil || !ok || !term.IsTerminal(int(f.Fd())) || totalSteps == 0 {
		return
	}
	r.startBar(f)
}

// logger is a slog.Logger that writes through the reporter.
func (r *reporter) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(lineWriter{r}, &slog.HandlerOptions{Level: level}))
}

type lineWriter struct{ r *reporter }

func (w lineWriter) Write(b []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.out.Write(b)
}

// line prints one log line: level, seconds since start, message.
func (r *reporter) line(level, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "%-5s [%6.1fs] %s\n", level, time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// event shows one engine event.
func (r *reporter) event(ev upgrade.Event) {
	defer func() {
		if r.onEvent != nil {
			r.onEvent(ev)
		}
	}()
	if r.jsonOut != nil {
		r.mu.Lock()
		_ = r.jsonOut.Encode(ev)
		r.mu.Unlock()
		return
	}
	switch ev.Type {
	case upgrade.EventStepStart:
		r.mu.Lock()
		r.current = describeStep(ev.Step)
		r.mu.Unlock()
		switch ref, _ := upgrade.ParseStep(ev.Step); ref.Name {
		case upgrade.StepReplace, upgrade.StepMigrate, upgrade.StepBackup:
			r.line("INFO", "%s", describeStep(ev.Step))
		}
	case upgrade.EventStepDone, upgrade.EventStepSkip:
		if r.bar != nil {
			r.bar.Increment()
		}
		if ev.Type == upgrade.EventStepDone {
			if d, ok := ev.Fields["duration"].(time.Duration); ok && d > 2*time.Second {
				r.line("INFO", "%s done in %s", describeStep(ev.Step), d.Round(100*time.Millisecond))
			}
		}
	case upgrade.EventWaitProgress:
		r.line("INFO", "waiting: %s", ev.Message)
	case upgrade.EventStall, upgrade.EventRemediation, upgrade.EventFault:
		r.line("WARN", "%s", ev.Message)
	case upgrade.EventFailed:
		// The command prints the failure, once, with what to do.
	case upgrade.EventDone:
		// The command prints its own closing line.
	default:
		if ev.Message != "" {
			r.line("INFO", "%s", ev.Message)
		}
	}
}

// close stops the live bar.
func (r *reporter) close() {
	if r.bars != nil {
		if r.bar != nil && !r.bar.Completed() {
			r.bar.Abort(false)
		}
		r.bars.Wait()
		r.bars = nil
	}
}

// describeStep turns a step ID into words: "2.1.4->2.2.5: replace replica-2".
func describeStep(step string) string {
	ref, err := upgrade.ParseStep(step)
	if err != nil {
		return step
	}
	what := ref.Name
	switch {
	case ref.Name == upgrade.StepRemediate && ref.Action != "":
		what = fmt.Sprintf("remediation round %d: %s %s", ref.Round, ref.Action, ref.Replica)
	case ref.Name == upgrade.StepRemediate:
		what = fmt.Sprintf("remediation round %d", ref.Round)
	case ref.Replica != "":
		what += " " + ref.Replica
	}
	if ref.Hop == "" {
		return strings.TrimSpace(what)
	}
	return ref.Hop + ": " + strings.TrimSpace(what)
}
