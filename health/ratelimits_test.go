package health

import (
	"testing"
	"time"
)

func TestReportRateLimits(t *testing.T) {
	at := time.Date(2026, 6, 20, 14, 0, 0, 0, time.UTC)
	full := RateLimits{RemainingRequests: 9999, RemainingTokens: 29999000, LimitRequests: 10000, LimitTokens: 30000000,
		ResetRequests: 6 * time.Millisecond, ResetTokens: 2 * time.Second}
	tests := []struct {
		name    string
		reports []RateLimits
		check   func(t *testing.T, s Snapshot)
	}{
		{"never reported", nil, func(t *testing.T, s Snapshot) {
			if s.RemainingRequests != nil || s.LimitRequests != nil || s.LimitTokens != nil || s.RequestsReset != nil ||
				s.TokensReset != nil || s.RateLimitsAt != nil {
				t.Errorf("snapshot has rate limits: %+v", s)
			}
		}},
		{"a full report", []RateLimits{full}, func(t *testing.T, s Snapshot) {
			if s.RemainingRequests == nil || *s.RemainingRequests != 9999 || *s.RemainingTokens != 29999000 {
				t.Errorf("remaining %v %v", s.RemainingRequests, s.RemainingTokens)
			}
			if s.LimitRequests == nil || *s.LimitRequests != 10000 || s.LimitTokens == nil || *s.LimitTokens != 30000000 {
				t.Errorf("limits %v %v", s.LimitRequests, s.LimitTokens)
			}
			if s.RequestsReset == nil || !s.RequestsReset.Equal(at.Add(6*time.Millisecond)) ||
				s.TokensReset == nil || !s.TokensReset.Equal(at.Add(2*time.Second)) {
				t.Errorf("resets %v %v", s.RequestsReset, s.TokensReset)
			}
			if s.RateLimitsAt == nil || !s.RateLimitsAt.Equal(at) {
				t.Errorf("reported at %v", s.RateLimitsAt)
			}
		}},
		{"zero left and a limit of zero are values", []RateLimits{{RemainingRequests: 0, RemainingTokens: -1,
			LimitRequests: 0, LimitTokens: -1, ResetRequests: 0, ResetTokens: -1}}, func(t *testing.T, s Snapshot) {
			if s.RemainingRequests == nil || *s.RemainingRequests != 0 || s.LimitRequests == nil || *s.LimitRequests != 0 {
				t.Errorf("remaining %v limit %v", s.RemainingRequests, s.LimitRequests)
			}
			if s.RemainingTokens != nil || s.LimitTokens != nil || s.TokensReset != nil {
				t.Errorf("tokens reported though not said: %+v", s)
			}
		}},
		{"what a later report leaves out keeps its value", []RateLimits{full, {RemainingRequests: 5, RemainingTokens: -1,
			LimitRequests: -1, LimitTokens: -1, ResetRequests: -1, ResetTokens: -1}}, func(t *testing.T, s Snapshot) {
			if *s.RemainingRequests != 5 || *s.RemainingTokens != 29999000 || *s.LimitRequests != 10000 {
				t.Errorf("remaining %d %d limit %d", *s.RemainingRequests, *s.RemainingTokens, *s.LimitRequests)
			}
		}},
		{"a report saying nothing leaves no time", []RateLimits{NoRateLimits}, func(t *testing.T, s Snapshot) {
			if s.RateLimitsAt != nil {
				t.Errorf("reported at %v", s.RateLimitsAt)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := NewRegistry("openai").Target("openai")
			for _, r := range tt.reports {
				tg.ReportRateLimits(r, at)
			}
			tt.check(t, tg.SnapshotAt(at))
		})
	}
}

func TestReportRateLimitsAllocs(t *testing.T) {
	tg := NewRegistry("p").Target("p")
	now := time.Now()
	l := RateLimits{RemainingRequests: 1, RemainingTokens: 2, LimitRequests: 3, LimitTokens: 4, ResetRequests: time.Second, ResetTokens: time.Second}
	if a := testing.AllocsPerRun(100, func() { tg.ReportRateLimits(l, now) }); a != 0 {
		t.Errorf("%.1f allocations per report", a)
	}
}
