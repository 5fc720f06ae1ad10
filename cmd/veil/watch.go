package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wedsync/veil/migrate"
)

// watchSynopsis is the synopsis and description `veil migrate watch
// --help` prints.
const watchSynopsis = `migrate watch --config FILE [--interval 2s] [--output json] ID

Follows a migration's ramp live: each new event (started, advanced, held,
rolled back, ...) as it happens, and while a stage runs, its two paths'
requests, errors and p95 against the stage's gates, with when the stage
may move on. It ends when the migration does (completed, rolled back or
failed), or on Ctrl-C. --output json prints one JSON document per change
(the migration, and the validation while ramping), one a line.`

// migrateWatch runs `veil migrate watch ID`.
func migrateWatch(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate watch", flag.ContinueOnError)
	path := fs.String("config", "", "the running veil's config file (for the admin address and token)")
	interval := fs.Duration("interval", 2*time.Second, "how often to ask")
	output := outputFlag(fs)
	pos, err := parseFlags(fs, watchSynopsis, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return fmt.Errorf("%w: migrate watch needs the migration's ID", errUsage)
	case *path == "":
		return fmt.Errorf("%w: migrate watch needs --config FILE", errUsage)
	case *interval < 100*time.Millisecond:
		return fmt.Errorf("%w: --interval must be at least 100ms", errUsage)
	}
	base, token, err := adminTarget(*path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w := watcher{out: stdout, json: *output == "json"}
	for {
		var m migrate.Migration
		if err := fetchAdmin(base+migrationPath(pos[0]), token, &m); err != nil {
			return err
		}
		var v *migrate.Validation
		if m.Status == migrate.StatusRamping {
			v = &migrate.Validation{}
			if err := fetchAdmin(base+migrationPath(pos[0], "validate"), token, v); err != nil {
				return err
			}
		}
		if err := w.show(&m, v); err != nil {
			return err
		}
		if done(m.Status) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// done reports whether a migration has ended.
func done(s migrate.Status) bool {
	return s == migrate.StatusCompleted || s == migrate.StatusRolledBack || s == migrate.StatusFailed
}

// watcher prints what changed since the last look.
type watcher struct {
	out    io.Writer
	json   bool
	events int
	last   string
	begun  bool
}

// show prints the migration's new events and, when it changed, where its
// stage stands against the gates.
func (w *watcher) show(m *migrate.Migration, v *migrate.Validation) error {
	if w.json {
		line := struct {
			Migration  *migrate.Migration  `json:"migration"`
			Validation *migrate.Validation `json:"validation,omitempty"`
		}{m, v}
		b, err := json.Marshal(line)
		if err != nil {
			return err
		}
		if s := string(b); s != w.last {
			w.last = s
			_, err = fmt.Fprintln(w.out, s)
		}
		return err
	}
	if !w.begun {
		w.begun = true
		fmt.Fprintf(w.out, "%s: %s from %s to %s, %d stages (%s); gates: at least %d requests a path, errors at most %s, p95 at most %.2f times\n",
			m.ID, m.Supplier, m.From, m.To, len(m.Stages), stageShares(m), m.Gates.MinSample, fmtPercent(m.Gates.MaxErrorRate),
			m.Gates.MaxP95Ratio)
	}
	for _, ev := range m.Events[min(w.events, len(m.Events)):] {
		fmt.Fprintf(w.out, "%s  %-12s stage %d  %s\n", ev.At.UTC().Format("15:04:05"), ev.Kind, ev.Stage+1, ev.Message)
	}
	w.events = len(m.Events)
	state := describeState(m)
	if v != nil && m.Stage < len(v.Stages) {
		s := v.Stages[m.Stage]
		state = fmt.Sprintf("stage %d of %d at %s: source %s, target %s; %s", m.Stage+1, len(m.Stages), fmtPercent(m.Share()),
			pathLine(s.Source), pathLine(s.Target), gateLine(m, s))
	}
	if state != w.last {
		w.last = state
		fmt.Fprintf(w.out, "%s  %s\n", time.Now().UTC().Format("15:04:05"), state)
	}
	return nil
}

// stageShares lists the stages' shares: 10%, 50%, 100%.
func stageShares(m *migrate.Migration) string {
	s := make([]string, len(m.Stages))
	for i, st := range m.Stages {
		s[i] = fmtPercent(st.Share)
	}
	return strings.Join(s, ", ")
}

// pathLine is a path's figures in a stage.
func pathLine(p migrate.PathReport) string {
	if p.Requests == 0 {
		return "no requests yet"
	}
	return fmt.Sprintf("%d requests, %d errors, p95 %.0f ms", p.Requests, p.Errors, p.P95MS)
}

// gateLine says whether a stage's gates pass yet and when it may move on.
func gateLine(m *migrate.Migration, s migrate.StageReport) string {
	g := m.Gates
	var wait []string
	if s.Source.Requests < int64(g.MinSample) || s.Target.Requests < int64(g.MinSample) {
		wait = append(wait, fmt.Sprintf("needs %d requests on each path", g.MinSample))
	}
	if s.Target.Requests > 0 && 1-s.Target.SuccessRate > g.MaxErrorRate {
		wait = append(wait, fmt.Sprintf("target errors %s above %s", fmtPercent(1-s.Target.SuccessRate), fmtPercent(g.MaxErrorRate)))
	}
	if s.Source.P95MS > 0 && s.Target.P95MS > max(s.Source.P95MS, 1)*g.MaxP95Ratio {
		wait = append(wait, fmt.Sprintf("target p95 above %.2f times the source's", g.MaxP95Ratio))
	}
	next := ""
	if m.Stage < len(m.Stages) {
		next = ", dwell until " + m.StageStarted.Add(m.Stages[m.Stage].Dwell).UTC().Format("15:04:05")
	}
	if len(wait) == 0 {
		return "gates pass" + next
	}
	return "gates hold: " + strings.Join(wait, "; ") + next
}
