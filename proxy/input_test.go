package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestValidModel(t *testing.T) {
	cases := []struct {
		model string
		ok    bool
	}{
		{"gpt-4o-mini", true},
		{"claude-haiku-4-5", true},
		{"meta-llama/Llama-3.1-8B-Instruct", true},
		{"accounts/fireworks/models/llama-v3p1-8b-instruct", true},
		{"ft:gpt-4o-mini:wedsync::9abc", true},
		{"llama3.2:latest", true},
		{"text-embedding-3-small", true},
		{"model@2024+preview", true},
		{"v1.5", true},
		{strings.Repeat("m", MaxModelBytes), true},

		{"", false},
		{strings.Repeat("m", MaxModelBytes+1), false},
		{"../admin", false},
		{"gpt-4o/../../admin", false},
		{"gpt-4o/..", false},
		{"./gpt-4o", false},
		{"..", false},
		{".", false},
		{"/gpt-4o", false},
		{"gpt-4o/", false},
		{"gpt//4o", false},
		{`gpt-4o\..\admin`, false},
		{"gpt-4o?api-version=1", false},
		{"gpt-4o#frag", false},
		{"gpt%2f..%2fadmin", false},
		{"gpt 4o", false},
		{"gpt-4o\r\nHost: evil.example", false},
		{"gpt-4o\x00", false},
		{"gpt-4o\x7f", false},
		{"gpt-4o\t", false},
		{"gpt-4\u00f6", false},
		{"gpt-4o;rm", false},
	}
	for _, tc := range cases {
		t.Run(strings.ToValidUTF8(tc.model, "?"), func(t *testing.T) {
			if got := validModel([]byte(tc.model)); got != tc.ok {
				t.Errorf("validModel(%q) = %v, want %v", tc.model, got, tc.ok)
			}
		})
	}
}

func TestFramingError(t *testing.T) {
	cases := []struct {
		name, raw string
		refused   bool
	}{
		{"plain", "Host: veil\r\nContent-Length: 12\r\nContent-Type: application/json\r\n\r\n", false},
		{"chunked", "Host: veil\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"no header", "", false},
		{"x-content-length is another field", "X-Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"content-length-ish name", "Content-Lengthy: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"length and encoding", "Host: veil\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"encoding first", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", true},
		{"upper case", "CONTENT-LENGTH: 4\r\nTRANSFER-ENCODING: chunked\r\n\r\n", true},
		{"space before colon", "Content-Length : 4\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"bare newlines", "Content-Length: 4\nTransfer-Encoding: chunked\n\n", true},
		{"folded", "Host: veil\r\nX-Wedding: a\r\n b\r\n\r\n", true},
		{"folded with a tab", "Host: veil\r\nX-Wedding: a\r\n\tb\r\n\r\n", true},
		{"after the header", "Host: veil\r\n\r\n continued body\r\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := framingError([]byte(tc.raw))
			if (e != nil) != tc.refused {
				t.Fatalf("framingError = %v, want refused %v", e, tc.refused)
			}
			if e != nil && (e.Status != 400 || e.Code != "malformed_request") {
				t.Errorf("error %+v", e)
			}
		})
	}
}

func FuzzFramingError(f *testing.F) {
	for _, s := range []string{
		"Host: veil\r\nContent-Length: 12\r\n\r\n",
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
		"X-A: a\r\n b\r\n\r\n",
		"\n\n",
		"Transfer-Encoding",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e := framingError(raw)
		if e != nil && e.Status != 400 {
			t.Fatalf("status %d", e.Status)
		}
	})
}

func FuzzValidModel(f *testing.F) {
	for _, s := range []string{"gpt-4o-mini", "meta-llama/Llama-3.1-8B-Instruct", "../x", "a/./b", "ft:x::y"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		if !validModel(m) {
			return
		}
		s := string(m)
		for _, bad := range []string{"..", "//", "\\", "?", "#", "%", " ", "\r", "\n"} {
			if bad == ".." {
				for _, seg := range strings.Split(s, "/") {
					if seg == "." || seg == ".." || seg == "" {
						t.Fatalf("accepted %q with segment %q", s, seg)
					}
				}
				continue
			}
			if strings.Contains(s, bad) {
				t.Fatalf("accepted %q containing %q", s, bad)
			}
		}
	})
}

func TestRetryAfterBounds(t *testing.T) {
	cases := []struct {
		name, header, value string
		want                time.Duration
	}{
		{"seconds", "Retry-After", "7", 7 * time.Second},
		{"milliseconds", "Retry-After-Ms", "250", 250 * time.Millisecond},
		{"zero", "Retry-After", "0", 0},
		{"negative ms", "Retry-After-Ms", "-5", 5 * time.Second},
		{"huge ms", "Retry-After-Ms", "1e300", maxRetryHint},
		{"infinite ms", "Retry-After-Ms", "+Inf", maxRetryHint},
		{"nan ms", "Retry-After-Ms", "NaN", 5 * time.Second},
		{"overflowing seconds", "Retry-After", "99999999999999999999", 5 * time.Second},
		{"int64 seconds", "Retry-After", "9223372036854775807", maxRetryHint},
		{"negative seconds", "Retry-After", "-1", 5 * time.Second},
		{"far future date", "Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT", maxRetryHint},
		{"past date", "Retry-After", "Mon, 01 Jan 2001 00:00:00 GMT", 0},
		{"garbage", "Retry-After", "soon", 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.ResponseHeader
			h.Set(tc.header, tc.value)
			if got := retryAfter(&h); got != tc.want {
				t.Errorf("retryAfter(%s: %s) = %v, want %v", tc.header, tc.value, got, tc.want)
			}
		})
	}
}

func TestAppendSafeQuery(t *testing.T) {
	cases := []struct{ in, want string }{
		{"limit=20&after=file-1", "limit=20&after=file-1"},
		{"api_key=sk-x", ""},
		{"limit=20&api-key=sk-x&order=asc", "limit=20&order=asc"},
		{"API_KEY=sk-x&Key=1&token=t&access_token=a&subscription-key=s&apikey=k", ""},
		{"api%5Fkey=sk-x&%41PI-key=sk-y&ok=1", "ok=1"},
		{"api%zzkey=1&limit=2", "limit=2"},
		{"keyboard=1&monkey=2", "keyboard=1&monkey=2"},
		{"&&limit=1&", "limit=1"},
		{"a=1&&b=2", "a=1&b=2"},
		{"base_url=http://canary&limit=1", "base_url=http://canary&limit=1"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := string(appendSafeQuery(nil, []byte(tc.in))); got != tc.want {
				t.Errorf("appendSafeQuery(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
