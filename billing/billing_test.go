package billing

import "testing"

func TestKeySource(t *testing.T) {
	for _, tc := range []struct {
		s     KeySource
		payer Payer
		valid bool
	}{
		{PlatformKey, PaidByPlatform, true},
		{ClientKey, PaidByClient, true},
		{"", PaidByPlatform, false},
	} {
		if got := tc.s.Payer(); got != tc.payer {
			t.Errorf("%q.Payer() = %q, want %q", tc.s, got, tc.payer)
		}
		if got := tc.s.Valid(); got != tc.valid {
			t.Errorf("%q.Valid() = %v, want %v", tc.s, got, tc.valid)
		}
	}
}

func TestMode(t *testing.T) {
	for _, tc := range []struct {
		m     Mode
		first KeySource
		payer Payer
	}{
		{ModePlatform, PlatformKey, PaidByPlatform},
		{ModeClient, ClientKey, PaidByClient},
		{ModeHybrid, ClientKey, PaidByClient},
		{"", PlatformKey, PaidByPlatform},
	} {
		if got := tc.m.First(); got != tc.first {
			t.Errorf("%q.First() = %q, want %q", tc.m, got, tc.first)
		}
		if got := tc.m.Payer(); got != tc.payer {
			t.Errorf("%q.Payer() = %q, want %q", tc.m, got, tc.payer)
		}
	}
}

// TestSpelling: the values are the strings of configuration, usage
// records, headers and JSON documents.
func TestSpelling(t *testing.T) {
	for _, tc := range [][2]string{
		{string(PlatformKey), "platform"}, {string(ClientKey), "client"},
		{string(PaidByPlatform), "platform"}, {string(PaidByClient), "client"}, {string(PaidByNone), "none"},
		{string(ModePlatform), "platform"}, {string(ModeClient), "client"}, {string(ModeHybrid), "hybrid"},
	} {
		if got, want := tc[0], tc[1]; got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}

func TestOutcomeFailed(t *testing.T) {
	for _, tc := range []struct {
		o    Outcome
		want bool
	}{
		{Outcome{Status: 200}, false},
		{Outcome{Status: 204}, false},
		{Outcome{Status: 200, Err: "upstream_status"}, true},
		{Outcome{Status: 503}, true},
		{Outcome{}, true},
	} {
		if got := tc.o.Failed(); got != tc.want {
			t.Errorf("%+v.Failed() = %v, want %v", tc.o, got, tc.want)
		}
	}
}
