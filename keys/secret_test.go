package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const testValue = "sk-proj-SUPERSECRETVALUE0123456789"

func TestSecret(t *testing.T) {
	s := NewSecret(testValue)
	fp := Fingerprint(testValue)
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"Reveal", s.Reveal(), testValue},
		{"Fingerprint", s.Fingerprint(), fp},
		{"String", s.String(), "secret:" + fp},
		{"GoString", s.GoString(), `keys.Secret("secret:` + fp + `")`},
		{"zero Reveal", Secret{}.Reveal(), ""},
		{"zero Fingerprint", Secret{}.Fingerprint(), ""},
		{"zero String", Secret{}.String(), "secret:empty"},
		{"empty value", NewSecret("").String(), "secret:empty"},
		{"known fingerprint", Fingerprint("abc"), "ba7816bf"}, // sha256("abc") = ba7816bf...
		{"empty fingerprint", Fingerprint(""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	if s.IsZero() || !(Secret{}).IsZero() || !NewSecret("").IsZero() {
		t.Error("IsZero is wrong")
	}
	if len(fp) != 8 {
		t.Errorf("fingerprint %q is not 8 characters", fp)
	}
}

// config is how secrets appear in practice: in exported and unexported
// struct fields, by value and by pointer.
type config struct {
	Name     string
	APIKey   Secret
	Ptr      *Secret
	Keys     []Secret
	ByName   map[string]Secret
	internal Secret
}

func newConfig() config {
	s := NewSecret(testValue)
	return config{
		Name:     "openai",
		APIKey:   s,
		Ptr:      &s,
		Keys:     []Secret{s},
		ByName:   map[string]Secret{"k": s},
		internal: s,
	}
}

func assertHidden(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, testValue) || strings.Contains(out, "SUPERSECRET") {
		t.Fatalf("%s reveals the secret: %s", what, out)
	}
}

func TestSecretFmt(t *testing.T) {
	s := NewSecret(testValue)
	cfg := newConfig()
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10v", "%-20s", "%.3s", "%#q", "%+q"}
	for _, verb := range verbs {
		t.Run(verb, func(t *testing.T) {
			for name, arg := range map[string]any{
				"value": s, "pointer": &s, "struct": cfg, "struct pointer": &cfg,
				"slice": []Secret{s}, "map": map[Secret]int{s: 1},
			} {
				assertHidden(t, verb+" of "+name, fmt.Sprintf(verb, arg))
			}
		})
	}
	t.Run("forms", func(t *testing.T) {
		fp := s.Fingerprint()
		for verb, want := range map[string]string{
			"%v": "secret:" + fp, "%s": "secret:" + fp, "%+v": "secret:" + fp,
			"%q": `"secret:` + fp + `"`, "%#v": `keys.Secret("secret:` + fp + `")`,
		} {
			if got := fmt.Sprintf(verb, s); got != want {
				t.Errorf("Sprintf(%q) = %q, want %q", verb, got, want)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		err := fmt.Errorf("calling upstream with key %v: %w", s, errors.New("401"))
		assertHidden(t, "wrapped error", err.Error())
		err = fmt.Errorf("config %+v: %w", cfg, err)
		assertHidden(t, "wrapped error", err.Error())
	})
	t.Run("print functions", func(t *testing.T) {
		assertHidden(t, "Sprint", fmt.Sprint(s, cfg, &cfg))
		assertHidden(t, "Sprintln", fmt.Sprintln(s, cfg, &cfg))
	})
}

func TestSecretJSON(t *testing.T) {
	s := NewSecret(testValue)
	cfg := newConfig()
	for name, v := range map[string]any{"value": s, "pointer": &s, "struct": cfg, "map key": map[Secret]int{s: 1}} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			assertHidden(t, "json.Marshal", string(b))
			if !strings.Contains(string(b), s.Fingerprint()) {
				t.Errorf("json.Marshal = %s, want the fingerprint", b)
			}
		})
	}
	b, _ := json.Marshal(s)
	if want := `"secret:` + s.Fingerprint() + `"`; string(b) != want {
		t.Errorf("MarshalJSON = %s, want %s", b, want)
	}
	text, _ := s.MarshalText()
	if string(text) != s.String() {
		t.Errorf("MarshalText = %s, want %s", text, s)
	}
}

func TestSecretZap(t *testing.T) {
	s := NewSecret(testValue)
	cfg := newConfig()
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	logger := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel))
	logger.Info("secrets",
		zap.Any("any", s),
		zap.Any("anyPtr", &s),
		zap.Object("object", s),
		zap.Stringer("stringer", s),
		zap.Any("struct", cfg),
		zap.Reflect("reflect", cfg),
		zap.Any("slice", []Secret{s}),
		zap.String("sprintf", fmt.Sprintf("%v", s)),
		zap.Error(fmt.Errorf("bad key %v", s)),
	)
	logger.Sugar().Infow("sugared", "key", s, "cfg", cfg)
	logger.Sugar().Infof("formatted %v %+v %s", s, cfg, &cfg)
	_ = logger.Sync()
	out := buf.String()
	assertHidden(t, "zap", out)
	if !strings.Contains(out, `"object":{"fingerprint":"`+s.Fingerprint()+`"}`) {
		t.Errorf("zap.Object output lacks the fingerprint: %s", out)
	}
	if !strings.Contains(out, `"stringer":"secret:`+s.Fingerprint()+`"`) {
		t.Errorf("zap.Stringer output lacks the fingerprint: %s", out)
	}
}

func TestSecretSlog(t *testing.T) {
	s := NewSecret(testValue)
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("secrets", "key", s, "cfg", newConfig())
	slog.New(slog.NewTextHandler(&buf, nil)).Info("secrets", "key", s, "cfg", newConfig())
	assertHidden(t, "slog", buf.String())
	if !strings.Contains(buf.String(), s.Fingerprint()) {
		t.Errorf("slog output lacks the fingerprint: %s", buf.String())
	}
}
