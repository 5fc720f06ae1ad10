package usage_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/proctest"
	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
	"github.com/wedsync/veil/usage"
)

// killGuard bounds every wait of TestKill9ReplayCountsOnce: it only fails
// a test that would hang.
const killGuard = 30 * time.Second

// The environment of TestKill9ReplayCountsOnce's child processes.
const (
	killChildEnv = "VEIL_USAGE_KILL_CHILD" // "emit" or "replay"
	killDirEnv   = "VEIL_USAGE_KILL_DIR"
	killRedisEnv = "VEIL_USAGE_KILL_REDIS"
	killBatchEnv = "VEIL_USAGE_KILL_BATCH"
	killRunEnv   = "VEIL_USAGE_KILL_RUN"
)

// killMaxRecords bounds the records of each emitting goroutine of a
// child, whatever its speed: far more than the test waits for.
const killMaxRecords = 3000

// killDay is the day of the records of TestKill9ReplayCountsOnce.
var killDay = time.Date(2026, 6, 13, 0, 0, 0, 0, time.UTC)

// TestKill9ReplayCountsOnce: a process emits records under load through
// a spool to a file sink and the store sink on a real Redis, and is
// killed with SIGKILL, three times, each time with another batch size;
// a last process replays what is left and closes. Every record is in the
// file once, and the aggregates equal the file's records.
func TestKill9ReplayCountsOnce(t *testing.T) {
	if mode := os.Getenv(killChildEnv); mode != "" {
		runKillChild(t, mode)
		return
	}
	if testing.Short() {
		t.Skip("starts and kills processes")
	}
	srv := redistest.Start(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "usage.ndjson")
	child := func(mode string, batch, run int) *proctest.Proc {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9ReplayCountsOnce$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+mode, killDirEnv+"="+dir, killRedisEnv+"="+srv.Addr,
			killBatchEnv+"="+strconv.Itoa(batch), killRunEnv+"="+strconv.Itoa(run))
		p, err := proctest.Start(fmt.Sprintf("child %s %d", mode, run), cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Kill)
		return p
	}
	for run, batch := range []int{40, 7, 100} {
		before := countLines(file)
		p := child("emit", batch, run)
		// Killed once a few hundred more records are in the file: the
		// store sink is writing by then.
		err := p.WaitReady(killGuard, 5*time.Millisecond, func() error {
			if n := countLines(file); n < before+300 {
				return fmt.Errorf("%d records in the file", n)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, p.Output())
		}
		p.Kill()
	}
	p := child("replay", 13, 3)
	select {
	case <-p.Exited():
	case <-time.After(killGuard):
		t.Fatalf("the replaying process did not end\n%s", p.Output())
	}

	records := readKillFile(t, file)
	want := map[string]int64{}
	twice := 0
	for id, r := range records {
		if r.n > 1 {
			twice++
			t.Errorf("record %s is in the file %d times", id, r.n)
		}
		want[r.supplier+"/"+r.model] += r.prompt
	}
	st, err := store.NewRedis(store.RedisOptions{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.QueryUsage(t.Context(), store.UsageQuery{From: killDay, To: killDay})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var requests int64
	for _, r := range rows {
		got[r.Supplier+"/"+r.Model] += r.PromptTokens
		requests += r.Requests
	}
	t.Logf("%d records in the file, %d requests in the aggregates", len(records), requests)
	if requests != int64(len(records)) || !maps.Equal(got, want) {
		t.Errorf("aggregates: %d requests, prompt tokens %v; the file: %d records, prompt tokens %v\n%s",
			requests, got, len(records), want, p.Output())
	}
}

// killRecord is what TestKill9ReplayCountsOnce reads of a record in the
// file, and how many times its request ID is there.
type killRecord struct {
	n               int
	supplier, model string
	prompt          int64
}

// countLines counts the lines of the file at path.
func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte("\n"))
}

// readKillFile reads the file sink's records by request ID.
func readKillFile(t *testing.T, path string) map[string]*killRecord {
	t.Helper()
	out := map[string]*killRecord{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var r usage.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad usage line %q: %v", sc.Text(), err)
		}
		k := out[r.RequestID]
		if k == nil {
			k = &killRecord{supplier: r.Supplier, model: r.Model, prompt: r.PromptTokens}
			out[r.RequestID] = k
		}
		k.n++
	}
	return out
}

// runKillChild is a child of TestKill9ReplayCountsOnce: "emit" emits
// records from four goroutines, up to killMaxRecords each, and waits to
// be killed; "replay" replays the spool to the sinks and closes.
func runKillChild(t *testing.T, mode string) {
	dir := filepath.Clean(os.Getenv(killDirEnv))
	batch, _ := strconv.Atoi(os.Getenv(killBatchEnv))
	run := os.Getenv(killRunEnv)
	sp, err := usage.OpenSpool(filepath.Join(dir, "spool"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	st, err := store.NewRedis(store.RedisOptions{Addr: os.Getenv(killRedisEnv)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs, err := usage.NewFileSink(filepath.Join(dir, "usage.ndjson"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := usage.NewEmitter(usage.Options{Spool: sp, BatchSize: batch, FlushInterval: 2 * time.Millisecond}, fs, usage.NewStoreSink(st))
	if mode == "emit" {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range killMaxRecords {
					r := &usage.Record{
						TS:           killDay.Add(time.Duration(i) * time.Second),
						RequestID:    fmt.Sprintf("run%s-g%d-%06d", run, g, i),
						Supplier:     fmt.Sprintf("sup-%d", i%3),
						Provider:     "openai",
						Model:        []string{"gpt-4o", "gpt-4o-mini"}[(i/3)%2],
						KeySource:    "platform",
						Billed:       "platform",
						Status:       200,
						PromptTokens: int64(100 + i%50),
					}
					r.SetCost(int64(i % 7))
					e.Emit(r)
					time.Sleep(200 * time.Microsecond)
				}
			})
		}
		wg.Wait()
		time.Sleep(10 * killGuard) // killed long before
	}
	ctx, cancel := context.WithTimeout(context.Background(), killGuard)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
