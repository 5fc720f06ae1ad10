package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/redistest"
)

// TestKill9UnderLoadLosesNoRecord: veil is killed with SIGKILL under mixed
// load (plain calls, streams, calls retried after the provider's 500s) and
// started again on the same usage spool; every call that was answered in
// full has exactly one record in the file sink, no record is there twice,
// and the supplier's monthly token count equals its records' tokens: the
// reservations the killed process left open are settled from the records.
func TestKill9UnderLoadLosesNoRecord(t *testing.T) {
	t.Setenv("TEST_ADMIN_TOKEN", "veil-kill-test-admin-0123456789")
	up := startFake(t, fakeopenai.Options{NoRecord: true, Latency: 2 * time.Millisecond})
	dir := t.TempDir()
	usageFile := filepath.Join(dir, "usage.ndjson")
	extra := "usage:\n  spool_dir: " + filepath.Join(dir, "spool") + "\n  flush_interval: 300ms\n" +
		"  sinks:\n    - type: file\n      path: " + usageFile + "\n" +
		"admin:\n  token: env://TEST_ADMIN_TOKEN\n" +
		"tiers:\n  - name: big\n    monthly_tokens: 1000000000\nsuppliers:\n  default_tier: big\n" +
		"store:\n  type: redis\n  addr: " + redistest.Start(t).Addr + "\n"
	v := startVeil(t, up.URL(), extra)

	bodies := []string{
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a toast"}]}`,
		`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"a toast"}]}`,
	}
	load := startLoad(v.proxy, 8, bodies, func(w, i int) {
		if w == 0 && i%10 == 0 {
			up.Script(fakeopenai.Status(500, 1)) // the next call is retried
		}
	})
	load.waitAnswered(t, 400)
	if err := v.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-v.exited; err == nil {
		t.Fatal("veil exited cleanly after SIGKILL")
	}
	answered := load.end()

	// The same spool and usage file, on new listeners.
	v2 := startVeil(t, up.URL(), extra)
	var seen map[string]int
	missing, doubled := 0, 0
	for range 500 { // replayed records reach the file in the background
		seen = readRecordIDs(t, usageFile)
		missing, doubled = 0, 0
		for id := range answered {
			if seen[id] == 0 {
				missing++
			}
		}
		for _, n := range seen {
			if n > 1 {
				doubled++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d calls answered before the kill, %d records after the restart", len(answered), len(seen))
	if missing > 0 || doubled > 0 {
		t.Errorf("%d answered calls have no record, %d records are there twice or more", missing, doubled)
	}
	recorded := recordedTokens(t, usageFile)
	var used int64
	for range 100 { // settlements are written in the background
		used = monthTokens(t, v2, "rose-venue")
		if used == recorded {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the supplier's month: %d tokens counted, %d in its records", used, recorded)
	if used != recorded {
		t.Errorf("the quota counts %d tokens for the month, the records %d\n%s", used, recorded, grepLog(v2.logs.String(), "quota"))
	}

	// The daily aggregates (GET /admin/usage) count each record once too,
	// though the killed process may have added a batch it had not yet
	// acknowledged in the spool: the replay skips what was added.
	records := 0
	for _, n := range readRecordIDs(t, usageFile) {
		records += n
	}
	var rep admin.UsageReport
	for range 250 { // the store sink writes in the background
		if err := fetchAdmin("http://"+v2.admin+"/admin/usage?supplier=rose-venue", "veil-kill-test-admin-0123456789", &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Total.Requests >= int64(records) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a record counted twice would be added by now
	if err := fetchAdmin("http://"+v2.admin+"/admin/usage?supplier=rose-venue", "veil-kill-test-admin-0123456789", &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("the aggregates count %d requests, the file %d records", rep.Total.Requests, records)
	if rep.Total.Requests != int64(records) {
		t.Errorf("the daily aggregates count %d requests, the usage file has %d records", rep.Total.Requests, records)
	}
}

// recordedTokens sums the tokens of the successful calls' records in a
// usage file, as the quota settles them.
func recordedTokens(t *testing.T, path string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct {
			Status      int    `json:"status"`
			Error       string `json:"error"`
			TotalTokens int64  `json:"total_tokens"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("bad usage line %q: %v", line, err)
		}
		if rec.Status/100 == 2 && rec.Error == "" {
			sum += rec.TotalTokens
		}
	}
	return sum
}

// monthTokens asks a running veil for a supplier's tokens this month.
func monthTokens(t *testing.T, v *veilProc, supplier string) int64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+v.admin+"/admin/explain?supplier="+supplier, nil)
	req.Header.Set("Authorization", "Bearer veil-kill-test-admin-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ex struct {
		Tier struct {
			Used map[string]int64 `json:"used"`
		} `json:"tier"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ex); err != nil {
		t.Fatal(err)
	}
	return ex.Tier.Used["month_tokens"]
}

// readRecordIDs counts the records of each request ID in a usage file.
func readRecordIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return seen
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("bad usage line %q: %v", sc.Text(), err)
		}
		seen[rec.RequestID]++
	}
	return seen
}

// grepLog returns the lines of a log that contain sub.
func grepLog(log, sub string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
