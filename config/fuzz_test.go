package config

import (
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error it returns is
// made of *FieldError values, and that what it accepts is valid.
func FuzzParse(f *testing.F) {
	for _, path := range exampleFiles(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		okProviders + okCallers,
		"a: b: c\n",
		"providers:\n- name: a\n  name: b\n",
		"providers: &p\n  - *p\n",
		"providers:\n  - &b {name: a, type: openai, base_url: 'https://x', api_key: 'env://K'}\n  - {<<: *b, name: b}\ncallers: [{name: c, token: 'file:///t'}]\n",
		"limits: {read_timeout: 30, max_body_bytes: 1e9}\n",
		"listen: {proxy: '[::1', admin: ':99999'}\n",
		"\t- x\n",
		"--- !!map\n? [a]\n: b\n",
		"a: &a [*a, *a]\nb: *a\n",
		"{[: ]}",
		"providers: [{api_key: 'vault://a/b#c#d'}]\n",
		"---\n---\n",
		"\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	env := envMap(map[string]string{EnvLogLevel: "debug"})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseWithEnv(data, "fuzz.yaml", env)
		if err != nil {
			fieldErrors(t, err)
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
		if _, ok := c.Provider(c.Routing.DefaultProvider); !ok {
			t.Fatalf("default provider %q not found", c.Routing.DefaultProvider)
		}
	})
}
