package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/store"
)

// maxSupplierRows bounds the suppliers listed on one page.
const maxSupplierRows = 500

// maxReason bounds the reason an operator gives for a rollback, in
// characters.
const maxReason = 300

var funcs = template.FuncMap{
	"dur": fmtDuration,
	"ms": func(v float64) string {
		if v == 0 {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	},
	"pct": func(v float64) string { return trimZeros(strconv.FormatFloat(v*100, 'f', 1, 64)) + "%" },
	"pctp": func(v *float64) string {
		if v == nil {
			return "-"
		}
		return trimZeros(strconv.FormatFloat(*v*100, 'f', 1, 64)) + "%"
	},
	"intp": func(v *int64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatInt(*v, 10)
	},
	"usd":    FormatUSD,
	"usd6":   func(v float64) string { return "$" + strconv.FormatFloat(v, 'f', 6, 64) },
	"num":    FormatNumber,
	"when":   fmtTime,
	"whenp":  func(t *time.Time) string { return fmtTimePtr(t) },
	"join":   strings.Join,
	"dash":   func(s string) string { return cmp(s, "-") },
	"plus1":  func(i int) int { return i + 1 },
	"escape": url.PathEscape,
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// fmtTime writes a time in UTC to the second, or - when zero.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

// providersData is the providers page's data.
type providersData struct {
	Status admin.Status
	// Latency charts each target's moving average of latency.
	Latency template.HTML
}

func (s *Server) providersPage(w http.ResponseWriter, _ *http.Request, u user) {
	p := page{Title: "Providers", Nav: "providers", User: &u}
	if s.o.Status == nil {
		p.Error = "This veil reports no provider status."
		s.render(w, http.StatusOK, "providers", p)
		return
	}
	st := s.o.Status.Status()
	var lat Series
	lat.Name = "latency"
	for _, h := range st.Health {
		lat.Buckets = append(lat.Buckets, Bucket{Label: h.Target, Value: h.LatencyEWMAms})
	}
	p.Data = providersData{Status: st, Latency: Chart{Title: "Latency by target (moving average)", YLabel: "ms",
		Width: 940, Height: 240, Series: []Series{lat}}.SVG()}
	s.render(w, http.StatusOK, "providers", p)
}

// supplierRow is one supplier on the suppliers page.
type supplierRow struct {
	admin.SupplierSettings
	Keys []keys.Status
}

type suppliersData struct {
	Query string
	Rows  []supplierRow
	// More is how many suppliers matched beyond those listed.
	More int
}

func (s *Server) suppliersPage(w http.ResponseWriter, r *http.Request, u user) {
	p := page{Title: "Suppliers", Nav: "suppliers", User: &u}
	if s.o.Suppliers == nil {
		p.Error = "This veil reports no suppliers."
		s.render(w, http.StatusOK, "suppliers", p)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	held := keysBySupplier(s.o.Suppliers.Keys())
	d := suppliersData{Query: q}
	for _, id := range s.o.Suppliers.Suppliers() {
		if q != "" && !strings.Contains(strings.ToLower(id), strings.ToLower(q)) {
			continue
		}
		if len(d.Rows) == maxSupplierRows {
			d.More++
			continue
		}
		d.Rows = append(d.Rows, supplierRow{SupplierSettings: s.o.Suppliers.Supplier(id), Keys: held[id]})
	}
	p.Data = d
	s.render(w, http.StatusOK, "suppliers", p)
}

func keysBySupplier(all []keys.Status) map[string][]keys.Status {
	out := map[string][]keys.Status{}
	for _, k := range all {
		out[k.Supplier] = append(out[k.Supplier], k)
	}
	return out
}

type supplierData struct {
	Settings    admin.SupplierSettings
	Keys        []keys.Status
	Workflow    string
	Model       string
	Explanation *admin.Explanation
	ExplainErr  string
}

func (s *Server) supplierPage(w http.ResponseWriter, r *http.Request, u user) {
	id := r.PathValue("id")
	p := page{Title: "Supplier " + id, Nav: "suppliers", User: &u}
	if s.o.Suppliers == nil {
		s.renderError(w, http.StatusNotFound, &u, "This veil reports no suppliers.")
		return
	}
	q := r.URL.Query()
	d := supplierData{Settings: s.o.Suppliers.Supplier(id), Keys: keysBySupplier(s.o.Suppliers.Keys())[id],
		Workflow: q.Get("workflow"), Model: q.Get("model")}
	ex, err := s.o.Suppliers.Explain(r.Context(), id, d.Workflow, d.Model)
	if err != nil {
		d.ExplainErr = err.Error()
	} else {
		d.Explanation = &ex
	}
	p.Data = d
	s.render(w, http.StatusOK, "supplier", p)
}

func (s *Server) migrationsPage(w http.ResponseWriter, r *http.Request, u user) {
	p := page{Title: "Migrations", Nav: "migrations", User: &u}
	if s.o.Migrations == nil {
		p.Error = "Migrations are not available in this veil."
		s.render(w, http.StatusOK, "migrations", p)
		return
	}
	list, err := s.o.Migrations.List(r.Context())
	if err != nil {
		p.Error = "The migrations could not be read: " + err.Error()
		s.render(w, http.StatusBadGateway, "migrations", p)
		return
	}
	p.Data = list
	s.render(w, http.StatusOK, "migrations", p)
}

type migrationData struct {
	M *migrate.Migration
	// CanRollback shows the rollback form: the user may act, and the
	// migration is not rolled back or failed already.
	CanRollback bool
	// Rollbackable says the migration's state allows a rollback, whoever
	// looks.
	Rollbackable bool
	CSRF         string
}

func (s *Server) migrationPage(w http.ResponseWriter, r *http.Request, u user) {
	notice := ""
	if r.URL.Query().Get("rolled_back") != "" {
		notice = "The migration was rolled back: all of the supplier's traffic is on its source again."
	}
	s.showMigration(w, r, u, http.StatusOK, "", notice)
}

// showMigration renders a migration's page with a status and an error or
// a notice.
func (s *Server) showMigration(w http.ResponseWriter, r *http.Request, u user, status int, msg, notice string) {
	id := r.PathValue("id")
	if s.o.Migrations == nil {
		s.renderError(w, http.StatusNotFound, &u, "Migrations are not available in this veil.")
		return
	}
	m, err := s.o.Migrations.Get(r.Context(), id)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, migrate.ErrNotFound) {
			code = http.StatusNotFound
		}
		s.renderError(w, code, &u, "The migration could not be read: "+err.Error())
		return
	}
	rollbackable := m.Status != migrate.StatusRolledBack && m.Status != migrate.StatusFailed
	s.render(w, status, "migration", page{Title: "Migration " + m.ID, Nav: "migrations", User: &u, Error: msg, Notice: notice,
		Data: migrationData{M: m, Rollbackable: rollbackable, CanRollback: rollbackable && u.CanAct() && s.o.Rollback != nil, CSRF: u.CSRF}})
}

// rollback rolls a migration back for an operator or an admin, with the
// same call as POST /admin/migrations/{id}/rollback.
func (s *Server) rollback(w http.ResponseWriter, r *http.Request, u user) {
	id := r.PathValue("id")
	fields := []zap.Field{zap.String("operator", u.Name), zap.String("role", u.Role), zap.String("action", "migration rollback"),
		zap.String("migration", id), zap.String("remote", remoteIP(r))}
	if !u.CanAct() {
		s.audit.Warn("console action refused", append(fields, zap.String("reason", "role "+u.Role+" may not change anything"))...)
		s.renderError(w, http.StatusForbidden, &u, "Viewers cannot roll migrations back.")
		return
	}
	if s.o.Rollback == nil {
		s.renderError(w, http.StatusNotFound, &u, "Migrations are not available in this veil.")
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		s.showMigration(w, r, u, http.StatusBadRequest, "Tick the box to confirm the rollback.", "")
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if r := []rune(reason); len(r) > maxReason {
		reason = string(r[:maxReason])
	}
	if reason == "" {
		reason = "rolled back from the console"
	}
	reason = fmt.Sprintf("%s (by %s, console)", reason, u.Name)
	m, err := s.o.Rollback.Rollback(r.Context(), id, reason)
	if err != nil {
		code := http.StatusBadGateway
		switch {
		case errors.Is(err, migrate.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, migrate.ErrState), errors.Is(err, migrate.ErrStale), errors.Is(err, migrate.ErrConflict):
			code = http.StatusConflict
		}
		s.audit.Warn("console action failed", append(fields, zap.Int("status", code), zap.Error(err))...)
		if code == http.StatusNotFound {
			s.renderError(w, code, &u, "The migration could not be rolled back: "+err.Error())
			return
		}
		s.showMigration(w, r, u, code, "The migration could not be rolled back: "+err.Error(), "")
		return
	}
	s.audit.Info("console action", append(fields, zap.String("supplier", m.Supplier), zap.String("status", string(m.Status)),
		zap.String("why", reason))...)
	http.Redirect(w, r, Prefix+"migrations/"+url.PathEscape(m.ID)+"?rolled_back=1", http.StatusSeeOther)
}

func (s *Server) comparisonsPage(w http.ResponseWriter, r *http.Request, u user) {
	p := page{Title: "Comparisons", Nav: "comparisons", User: &u}
	if s.o.Comparisons == nil {
		p.Error = "Comparisons are not available in this veil."
		s.render(w, http.StatusOK, "comparisons", p)
		return
	}
	list, err := s.o.Comparisons.List(r.Context())
	if err != nil {
		p.Error = "The comparisons could not be read: " + err.Error()
		s.render(w, http.StatusBadGateway, "comparisons", p)
		return
	}
	p.Data = list
	s.render(w, http.StatusOK, "comparisons", p)
}

func (s *Server) comparisonPage(w http.ResponseWriter, r *http.Request, u user) {
	id := r.PathValue("id")
	if s.o.Comparisons == nil {
		s.renderError(w, http.StatusNotFound, &u, "Comparisons are not available in this veil.")
		return
	}
	rep, err := s.o.Comparisons.Report(r.Context(), id)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, compare.ErrNotFound) {
			code = http.StatusNotFound
		}
		s.renderError(w, code, &u, "The comparison could not be read: "+err.Error())
		return
	}
	s.render(w, http.StatusOK, "comparison", page{Title: "Comparison " + rep.Comparison.ID, Nav: "comparisons", User: &u,
		Data: NewComparisonView(rep)})
}

// usageGroups are the groupings the usage page offers, in order.
var usageGroups = []string{"billed", "workflow", "day", "supplier", "provider", "model", "key_source"}

type usageData struct {
	From, To, Supplier string
	// Groups are the groupings offered, with the chosen ones marked.
	Groups []usageGroup
	Report *admin.UsageReport
	// ByDay charts the cost of each day by who pays.
	ByDay template.HTML
}

type usageGroup struct {
	Name    string
	Checked bool
}

func (s *Server) usagePage(w http.ResponseWriter, r *http.Request, u user) {
	p := page{Title: "Usage", Nav: "usage", User: &u}
	q := r.URL.Query()
	chosen := q["group_by"]
	if len(chosen) == 0 {
		chosen = []string{"billed", "workflow"}
	}
	d := usageData{From: q.Get("from"), To: q.Get("to"), Supplier: q.Get("supplier")}
	for _, g := range usageGroups {
		d.Groups = append(d.Groups, usageGroup{Name: g, Checked: slices.Contains(chosen, g)})
	}
	p.Data = &d
	if s.o.Usage == nil {
		p.Error = "This veil keeps no usage aggregates."
		s.render(w, http.StatusOK, "usage", p)
		return
	}
	src := &onceUsage{next: s.o.Usage}
	ask := func(groups []string) (*admin.UsageReport, int, string) {
		v := url.Values{"group_by": {strings.Join(groups, ",")}}
		for _, k := range []string{"from", "to", "supplier"} {
			if q.Get(k) != "" {
				v.Set(k, q.Get(k))
			}
		}
		status, doc := admin.QueryUsage(src)(r.Context(), admin.Call{Query: v})
		if rep, ok := doc.(admin.UsageReport); ok {
			return &rep, status, ""
		}
		return nil, status, errorMessage(doc)
	}
	rep, status, msg := ask(chosen)
	if rep == nil {
		p.Error = "The usage could not be read: " + msg
		s.render(w, status, "usage", p)
		return
	}
	d.Report, d.From, d.To = rep, rep.From, rep.To
	if byDay, _, _ := ask([]string{"day", "billed"}); byDay != nil {
		d.ByDay = costByDay(byDay)
	}
	s.render(w, http.StatusOK, "usage", p)
}

// costByDay charts the cost of each day, one series per payer.
func costByDay(rep *admin.UsageReport) template.HTML {
	var days []string
	series := map[string]*Series{}
	var order []string
	for _, row := range rep.Rows {
		if !slices.Contains(days, row.Day) {
			days = append(days, row.Day)
		}
		payer := cmp(row.Billed, "unknown")
		if series[payer] == nil {
			series[payer] = &Series{Name: payer}
			order = append(order, payer)
		}
	}
	slices.Sort(days)
	slices.Sort(order)
	var all []Series
	for _, payer := range order {
		sr := series[payer]
		for _, day := range days {
			v := 0.0
			for _, row := range rep.Rows {
				if row.Day == day && cmp(row.Billed, "unknown") == payer {
					v += row.CostUSD
				}
			}
			sr.Buckets = append(sr.Buckets, Bucket{Label: day, Value: v})
		}
		all = append(all, *sr)
	}
	return Chart{Title: "Cost by day, by who pays", YLabel: "USD", Format: FormatUSD, Width: 940, Height: 260, Series: all}.SVG()
}

// errorMessage is the message of an admin error document.
func errorMessage(doc any) string {
	if m, ok := doc.(map[string]any); ok {
		if e, ok := m["error"].(map[string]string); ok {
			return e["message"]
		}
	}
	return "unknown error"
}

// onceUsage asks the store once per page: the table and the chart of the
// usage page read the same aggregates.
type onceUsage struct {
	next admin.UsageQuerier
	mu   sync.Mutex
	key  string
	rows []store.Usage
	err  error
}

var _ admin.UsageQuerier = (*onceUsage)(nil)

// QueryUsage answers from the first answer to a query of the same
// supplier and days (the store ignores the time of day).
func (o *onceUsage) QueryUsage(ctx context.Context, q store.UsageQuery) ([]store.Usage, error) {
	key := q.Supplier + "|" + q.From.UTC().Format(time.DateOnly) + "|" + q.To.UTC().Format(time.DateOnly)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.key == key {
		return o.rows, o.err
	}
	o.rows, o.err = o.next.QueryUsage(ctx, q)
	o.key = key
	return o.rows, o.err
}
