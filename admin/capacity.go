package admin

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/forecast"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/store"
)

// Defaults of GET /admin/capacity.
const (
	// DefaultCapacityTop is how many suppliers of each tier are listed.
	DefaultCapacityTop = 5
	// DefaultCapacityThreshold is the share of the providers' capacity
	// above which a projected month is flagged. It is an average over
	// the month, and traffic is not flat (days, hours, weekends): a month
	// averaging half its ceiling is likely to meet it in its busy hours.
	DefaultCapacityThreshold = 0.5
	// DefaultCapacityHistoryDays is how many days of usage the
	// projection learns from.
	DefaultCapacityHistoryDays = 365
	// NearLimitShare is the share of a limit from which a supplier counts
	// as near it.
	NearLimitShare = 0.8
)

// tierUseWorkers bounds the store calls a capacity report makes at once.
const tierUseWorkers = 8

// CapacityQuery tunes a capacity report.
type CapacityQuery struct {
	// Top is how many suppliers of each tier are listed, the nearest to
	// a limit first.
	Top int
	// Threshold flags projected months above this share of the
	// providers' capacity.
	Threshold float64
	// HistoryDays is how many days of usage, up to yesterday, the
	// projection learns from.
	HistoryDays int
}

// Values is the query string of q, leaving defaults out.
func (q CapacityQuery) Values() url.Values {
	v := url.Values{}
	if q.Top > 0 {
		v.Set("top", strconv.Itoa(q.Top))
	}
	if q.Threshold > 0 {
		v.Set("threshold", strconv.FormatFloat(q.Threshold, 'f', -1, 64))
	}
	if q.HistoryDays > 0 {
		v.Set("history_days", strconv.Itoa(q.HistoryDays))
	}
	return v
}

// CapacityReport is the document of GET /admin/capacity: how much room
// the platform has now and in the coming months.
type CapacityReport struct {
	// At is when the report was made.
	At time.Time `json:"at"`
	// Season is the season in force, if any.
	Season string `json:"season,omitempty"`
	// Providers are the platform keys' headroom at each provider now.
	Providers []ProviderHeadroom `json:"providers"`
	// Tiers are the suppliers' use of their tiers' limits now.
	Tiers []TierUse `json:"tiers"`
	// Forecast projects the platform's usage a year ahead against the
	// providers' capacity.
	Forecast CapacityForecast `json:"forecast"`
	// Problems says what could not be read (the store, for the tiers and
	// the forecast); the rest of the report stands.
	Problems []string `json:"problems,omitempty"`
}

// ProviderHeadroom is what a provider last said is left of its rate
// limits on WedSync's platform keys (its x-ratelimit-* headers), summed
// over the accounts of its pool: each organisation (or key, where the
// provider names none) has limits of its own, and keys of one organisation
// share them.
type ProviderHeadroom struct {
	Provider string `json:"provider"`
	Breaker  string `json:"breaker"`
	// ReportedAt is when the provider last said; absent when it never
	// did (no platform call yet, or a provider that sends no such
	// headers).
	ReportedAt *time.Time `json:"reported_at,omitempty"`
	// Accounts is how many accounts the figures are summed over (those
	// heard from lately, every replica's); absent before any report.
	Accounts int `json:"accounts,omitempty"`
	// Headroom is the share of the tighter limit left now over those
	// accounts, each refilled towards its reset, as load-aware routing
	// weighs it; absent when nothing tells.
	Headroom *float64       `json:"headroom,omitempty"`
	Requests WindowHeadroom `json:"requests"`
	Tokens   WindowHeadroom `json:"tokens"`
}

// WindowHeadroom is what is left of one kind of rate-limit window, over
// the accounts of a provider's pool.
type WindowHeadroom struct {
	// Limit is the windows' size and Remaining what was left of them, as
	// each account last reported.
	Limit     *int64 `json:"limit,omitempty"`
	Remaining *int64 `json:"remaining,omitempty"`
	// ShareLeft is Remaining over Limit.
	ShareLeft *float64 `json:"share_left,omitempty"`
	// Reset is when the last of the windows was to be full again; past
	// it, Remaining is out of date (the provider has not answered since).
	Reset *time.Time `json:"reset,omitempty"`
}

// TierUse is the use of one tier's limits by its suppliers.
type TierUse struct {
	Tier string `json:"tier"`
	// Suppliers is how many suppliers are counted: those the config or
	// an override names, and those that used platform keys this month.
	Suppliers int `json:"suppliers"`
	// Limits are the tier's per-minute and monthly limits (with the
	// season's in force) and their use.
	Limits []LimitUse `json:"limits"`
	// Top are the suppliers nearest to one of the limits.
	Top []SupplierUse `json:"top_suppliers"`
}

// LimitUse is one limit of a tier, over all its suppliers.
type LimitUse struct {
	// Limit is rpm, tpm, month_tokens or month_cost_micros.
	Limit string `json:"limit"`
	// PerSupplier is the limit of each supplier; zero is none.
	PerSupplier int64 `json:"per_supplier"`
	// Used is the current window's use over all the tier's suppliers.
	Used int64 `json:"used"`
	// ShareUsed is Used over PerSupplier times Suppliers.
	ShareUsed *float64 `json:"share_used,omitempty"`
	// NearLimit counts suppliers at NearLimitShare of the limit or more,
	// AtLimit those with nothing left.
	NearLimit int `json:"suppliers_near_limit"`
	AtLimit   int `json:"suppliers_at_limit"`
}

// SupplierUse is one supplier's use of its tier.
type SupplierUse struct {
	Supplier string `json:"supplier"`
	// Used is the current windows' use by limit name, of the limits the
	// tier sets.
	Used map[string]int64 `json:"used"`
	// HighestShare is the largest share of a limit used, and
	// HighestLimit that limit.
	HighestShare float64 `json:"highest_share"`
	HighestLimit string  `json:"highest_limit,omitempty"`
}

// CapacityForecast projects the platform's usage month by month against
// the providers' capacity.
type CapacityForecast struct {
	// HistoryFrom and HistoryTo are the days of usage asked for.
	HistoryFrom string `json:"history_from"`
	HistoryTo   string `json:"history_to"`
	// PeakSeason is the days projected at the peak rate, as MM-DD to
	// MM-DD (the season named peak, or March to October).
	PeakSeason string `json:"peak_season"`
	// Threshold is the share of capacity above which a month is flagged.
	Threshold float64 `json:"threshold"`
	// RequestsPerMinute and TokensPerMinute are the platform's capacity:
	// the sum of the providers' last reported limits, each over the
	// accounts of its pool; absent when none reported any.
	RequestsPerMinute *int64 `json:"capacity_requests_per_minute,omitempty"`
	TokensPerMinute   *int64 `json:"capacity_tokens_per_minute,omitempty"`
	// Basis says how each series was projected.
	Basis []SeriesBasis `json:"basis"`
	// Months are the twelve months after this one.
	Months []MonthCapacity `json:"months"`
	// PeakMonths are the months wholly in the peak season, and Flagged
	// those projected above the threshold.
	PeakMonths []string `json:"peak_months"`
	Flagged    []string `json:"flagged"`
}

// SeriesBasis says how a series was projected (see forecast.Projection).
type SeriesBasis struct {
	// Series is requests, tokens or cost_usd.
	Series      string  `json:"series"`
	Basis       string  `json:"basis"`
	HistoryDays int     `json:"history_days"`
	PeakFactor  float64 `json:"peak_factor"`
	Measured    bool    `json:"peak_factor_measured"`
}

// MonthCapacity is one projected month.
type MonthCapacity struct {
	Month    string `json:"month"`
	PeakDays int    `json:"peak_days"`
	// Requests and Tokens are the projected use of platform keys, CostUSD
	// what WedSync is projected to pay.
	Requests int64   `json:"requests"`
	Tokens   int64   `json:"tokens"`
	CostUSD  float64 `json:"cost_usd"`
	// RequestsCapacity and TokensCapacity are the capacity per minute
	// times the month's minutes, and the shares the projection's part of
	// them; absent without a capacity.
	RequestsCapacity *int64   `json:"requests_capacity,omitempty"`
	TokensCapacity   *int64   `json:"tokens_capacity,omitempty"`
	RequestsShare    *float64 `json:"requests_share,omitempty"`
	TokensShare      *float64 `json:"tokens_share,omitempty"`
	// AboveThreshold is set when a share is above the threshold.
	AboveThreshold bool `json:"above_threshold"`
}

// Capacity answers GET /admin/capacity?top=&threshold=&history_days=:
// the providers' headroom on the platform keys now, the tiers' use of
// their limits, and the coming months projected from the usage history
// against the providers' capacity.
func Capacity(rt RuntimeLoader, h HealthSnapshotter, u UsageQuerier) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		q, err := parseCapacityQuery(c.Query)
		if err != nil {
			return fail(http.StatusBadRequest, "bad_query", err.Error())
		}
		return http.StatusOK, BuildCapacity(ctx, rt.Load(), h, u, q, time.Now())
	}
}

// parseCapacityQuery reads top, threshold and history_days, with their
// defaults.
func parseCapacityQuery(v url.Values) (CapacityQuery, error) {
	q := CapacityQuery{Top: DefaultCapacityTop, Threshold: DefaultCapacityThreshold, HistoryDays: DefaultCapacityHistoryDays}
	if s := v.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 100 {
			return q, fmt.Errorf("top must be a number from 0 to 100, got %q", s)
		}
		q.Top = n
	}
	if s := v.Get("threshold"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f > 0 && f <= 10) {
			return q, fmt.Errorf("threshold must be a share above 0 and at most 10, such as 0.5, got %q", s)
		}
		q.Threshold = f
	}
	if s := v.Get("history_days"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 3660 {
			return q, fmt.Errorf("history_days must be a number of days from 1 to 3660, got %q", s)
		}
		q.HistoryDays = n
	}
	return q, nil
}

// BuildCapacity makes the capacity report of runtime r at now: the
// providers' headroom from h, the tiers' use from r's quota, and the
// forecast from the daily aggregates u keeps.
func BuildCapacity(ctx context.Context, r *generation.Runtime, h HealthSnapshotter, u UsageQuerier, q CapacityQuery,
	now time.Time) CapacityReport {
	now = now.UTC()
	rep := CapacityReport{At: now, Providers: []ProviderHeadroom{}, Tiers: []TierUse{}}
	if r.Policy != nil {
		rep.Season = r.Policy.Season(now)
	}
	for _, s := range h.Snapshot() {
		rep.Providers = append(rep.Providers, providerHeadroom(s))
	}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from := today.AddDate(0, 0, -q.HistoryDays)
	rows, err := u.QueryUsage(ctx, store.UsageQuery{From: from, To: today})
	if err != nil {
		rep.Problems = append(rep.Problems, "usage aggregates: "+err.Error())
	}
	var problem string
	rep.Tiers, problem = tierUses(ctx, r, rows, q.Top, now)
	if problem != "" {
		rep.Problems = append(rep.Problems, problem)
	}
	rep.Forecast = capacityForecast(r.Config, rows, rep.Providers, q.Threshold, from, today, now)
	return rep
}

// providerHeadroom is a target's rate limits over the accounts of its
// pool, or, when no report counts as an account's, its last report.
func providerHeadroom(s health.Snapshot) ProviderHeadroom {
	p := ProviderHeadroom{Provider: s.Target, Breaker: s.Breaker, ReportedAt: s.RateLimitsAt, Headroom: s.Headroom,
		Requests: windowHeadroom(s.LimitRequests, s.RemainingRequests, s.RequestsReset),
		Tokens:   windowHeadroom(s.LimitTokens, s.RemainingTokens, s.TokensReset)}
	if pool := s.Pool; pool != nil {
		at := pool.At
		p.ReportedAt, p.Accounts = &at, pool.Accounts
		p.Requests = windowHeadroom(pool.Requests.Limit, pool.Requests.Remaining, pool.Requests.Reset)
		p.Tokens = windowHeadroom(pool.Tokens.Limit, pool.Tokens.Remaining, pool.Tokens.Reset)
	}
	return p
}

func windowHeadroom(limit, remaining *int64, reset *time.Time) WindowHeadroom {
	w := WindowHeadroom{Limit: limit, Remaining: remaining, Reset: reset}
	if limit != nil && remaining != nil && *limit > 0 {
		w.ShareLeft = share(*remaining, *limit)
	}
	return w
}

// share is a over b with four decimals.
func share(a, b int64) *float64 {
	v := math.Round(float64(a)/float64(b)*1e4) / 1e4
	return &v
}

// capacityLimits are the limits a capacity report shows, in order.
var capacityLimits = []string{quota.LimitRequests, quota.LimitTokens, quota.LimitMonthTokens, quota.LimitMonthCost}

// tierUses reads the current use of every known supplier's tier, and
// sums it by tier. The suppliers are those the config or an override
// names, and those the aggregates show on platform keys this month.
func tierUses(ctx context.Context, r *generation.Runtime, rows []store.Usage, top int, now time.Time) ([]TierUse, string) {
	out := []TierUse{}
	if r.Quota == nil {
		return out, ""
	}
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	var suppliers []string
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			suppliers = append(suppliers, id)
		}
	}
	if r.Config != nil {
		for _, e := range r.Config.Suppliers.Entries {
			add(e.ID)
		}
	}
	for id := range r.Overrides {
		add(id)
	}
	for _, u := range rows {
		if !u.Day.Before(month) && u.KeySource == string(billing.PlatformKey) {
			add(u.Supplier)
		}
	}
	sort.Strings(suppliers)

	type result struct {
		tier *config.Tier
		used map[string]int64
		err  error
	}
	results := make([]result, len(suppliers))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(tierUseWorkers, len(suppliers)) {
		wg.Go(func() {
			for i := range next {
				id := []byte(suppliers[i])
				if t := r.Quota.Tier(id, now); t != nil {
					used, err := r.Quota.Used(ctx, id, now)
					results[i] = result{tier: t, used: used, err: err}
				}
			}
		})
	}
	for i := range suppliers {
		next <- i
	}
	close(next)
	wg.Wait()

	byTier := map[string]*TierUse{}
	tops := map[string][]SupplierUse{}
	failed := 0
	var firstErr error
	for i, res := range results {
		if res.tier == nil {
			continue
		}
		if res.err != nil {
			if failed++; firstErr == nil {
				firstErr = res.err
			}
			continue
		}
		tu := byTier[res.tier.Name]
		if tu == nil {
			tu = &TierUse{Tier: res.tier.Name, Top: []SupplierUse{}}
			limits := tierLimits(res.tier)
			for _, name := range capacityLimits {
				tu.Limits = append(tu.Limits, LimitUse{Limit: name, PerSupplier: limits[name]})
			}
			byTier[res.tier.Name] = tu
		}
		tu.Suppliers++
		su := SupplierUse{Supplier: suppliers[i], Used: map[string]int64{}}
		for j := range tu.Limits {
			l := &tu.Limits[j]
			used := res.used[l.Limit]
			l.Used += used
			if l.PerSupplier <= 0 {
				continue // not counted: the store keeps no counter of it
			}
			su.Used[l.Limit] = used
			sh := float64(used) / float64(l.PerSupplier)
			if sh >= NearLimitShare {
				l.NearLimit++
			}
			if used >= l.PerSupplier {
				l.AtLimit++
			}
			if sh > su.HighestShare {
				su.HighestShare, su.HighestLimit = sh, l.Limit
			}
		}
		su.HighestShare = math.Round(su.HighestShare*1e4) / 1e4
		tops[res.tier.Name] = append(tops[res.tier.Name], su)
	}
	// Every configured tier is listed, with no suppliers when none was
	// found on it.
	if r.Config != nil {
		for _, t := range r.Config.Tiers {
			if byTier[t.Name] == nil {
				tu := &TierUse{Tier: t.Name, Top: []SupplierUse{}}
				limits := map[string]int64{}
				if tier := r.Quota.TierNamed(t.Name, now); tier != nil {
					limits = tierLimits(tier)
				}
				for _, name := range capacityLimits {
					tu.Limits = append(tu.Limits, LimitUse{Limit: name, PerSupplier: limits[name]})
				}
				byTier[t.Name] = tu
			}
		}
	}
	for name, tu := range byTier {
		for j := range tu.Limits {
			if l := &tu.Limits[j]; l.PerSupplier > 0 && tu.Suppliers > 0 {
				l.ShareUsed = share(l.Used, l.PerSupplier*int64(tu.Suppliers))
			}
		}
		ts := tops[name]
		sort.SliceStable(ts, func(i, j int) bool {
			if ts[i].HighestShare != ts[j].HighestShare {
				return ts[i].HighestShare > ts[j].HighestShare
			}
			return ts[i].Used[quota.LimitMonthTokens] > ts[j].Used[quota.LimitMonthTokens]
		})
		tu.Top = append(tu.Top, ts[:min(top, len(ts))]...)
		out = append(out, *tu)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tier < out[j].Tier })
	problem := ""
	if failed > 0 {
		problem = fmt.Sprintf("quota counters: %d of %d suppliers could not be read, left out: %v", failed, len(suppliers), firstErr)
	}
	return out, problem
}

// capacityForecast projects the platform's daily requests and tokens
// (calls on platform keys) and cost (what WedSync pays) from the history
// in rows before today, and sets each month against the providers'
// capacity: their reported per-minute limits times the month's minutes.
func capacityForecast(cfg *config.Config, rows []store.Usage, providers []ProviderHeadroom, threshold float64,
	from, today, now time.Time) CapacityForecast {
	f := CapacityForecast{HistoryFrom: from.Format(time.DateOnly), HistoryTo: today.AddDate(0, 0, -1).Format(time.DateOnly),
		Threshold: threshold, Months: []MonthCapacity{}, PeakMonths: []string{}, Flagged: []string{}}
	peak, season := forecast.PeakMarchToOctober, config.DefaultPeakFrom+" to "+config.DefaultPeakTo
	if s, ok := cfg.PeakSeason(); ok {
		s.TimeZone = "" // whole UTC days, as the aggregates are kept
		peak, season = s.Active, s.From+" to "+s.To
	}
	f.PeakSeason = season
	byDay := map[time.Time]*[3]float64{}
	var days []time.Time
	for _, u := range rows {
		if !u.Day.Before(today) {
			continue // today is not over
		}
		d := byDay[u.Day]
		if d == nil {
			d = &[3]float64{}
			byDay[u.Day] = d
			days = append(days, u.Day)
		}
		if u.KeySource == string(billing.PlatformKey) {
			d[0] += float64(u.Requests)
			d[1] += float64(u.PromptTokens + u.CompletionTokens)
		}
		if u.Billed == string(billing.PaidByPlatform) {
			d[2] += float64(u.CostMicros) / 1e6
		}
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Before(days[j]) })
	names := [3]string{"requests", "tokens", "cost_usd"}
	var proj [3]forecast.Projection
	for i := range proj {
		points := make([]forecast.Point, 0, len(days))
		for _, d := range days {
			points = append(points, forecast.Point{Day: d, Value: byDay[d][i]})
		}
		proj[i] = forecast.Project(points, forecast.Options{To: today.AddDate(0, 0, -1), Now: now, Peak: peak})
		p := proj[i]
		f.Basis = append(f.Basis, SeriesBasis{Series: names[i], Basis: p.Basis, HistoryDays: p.HistoryDays,
			PeakFactor: math.Round(p.PeakFactor*1e3) / 1e3, Measured: p.Measured})
	}
	var rpm, tpm int64
	var anyRPM, anyTPM bool
	for _, p := range providers {
		if p.Requests.Limit != nil {
			rpm, anyRPM = rpm+*p.Requests.Limit, true
		}
		if p.Tokens.Limit != nil {
			tpm, anyTPM = tpm+*p.Tokens.Limit, true
		}
	}
	if anyRPM {
		f.RequestsPerMinute = &rpm
	}
	if anyTPM {
		f.TokensPerMinute = &tpm
	}
	for i, m := range proj[0].Months {
		mc := MonthCapacity{Month: m.Label, PeakDays: m.PeakDays, Requests: int64(math.Round(m.Value)),
			Tokens: int64(math.Round(proj[1].Months[i].Value)), CostUSD: math.Round(proj[2].Months[i].Value*100) / 100}
		minutes := int64(m.Start.AddDate(0, 1, 0).Sub(m.Start) / time.Minute)
		if anyRPM && rpm > 0 {
			c := rpm * minutes
			mc.RequestsCapacity, mc.RequestsShare = &c, share(mc.Requests, c)
			mc.AboveThreshold = *mc.RequestsShare > threshold
		}
		if anyTPM && tpm > 0 {
			c := tpm * minutes
			mc.TokensCapacity, mc.TokensShare = &c, share(mc.Tokens, c)
			mc.AboveThreshold = mc.AboveThreshold || *mc.TokensShare > threshold
		}
		if mc.AboveThreshold {
			f.Flagged = append(f.Flagged, mc.Month)
		}
		f.Months = append(f.Months, mc)
	}
	f.PeakMonths = append(f.PeakMonths, proj[0].Peaks()...)
	return f
}

// Capacity asks the admin listener for its capacity report (GET
// /admin/capacity), with q's knobs; zero ones take the listener's
// defaults.
func (c Client) Capacity(ctx context.Context, q CapacityQuery) (CapacityReport, error) {
	path := "/admin/capacity"
	if v := q.Values().Encode(); v != "" {
		path += "?" + v
	}
	var rep CapacityReport
	if err := c.Call(ctx, http.MethodGet, path, nil, &rep); err != nil {
		return CapacityReport{}, fmt.Errorf("capacity report: %w", err)
	}
	return rep, nil
}
