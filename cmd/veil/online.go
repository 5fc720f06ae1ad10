package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/keys/vault"
	"github.com/wedsync/veil/store"
)

// onlineCheck is what `veil config validate --online` found of one item: a
// secret reference, Vault or the store.
type onlineCheck struct {
	// item names what was checked: a field path such as
	// providers[0].api_key, "vault" or "store".
	item string
	// what is the reference or the address that was checked.
	what string
	// result says what was found when the check passed or could not be
	// made ("not checked: ...").
	result string
	// err is why the check failed.
	err error
}

// namedRef is a secret reference and the path of the field that holds it.
type namedRef struct {
	field string
	ref   config.SecretRef
}

// checkOnline checks cfg against the services it names, without starting
// veil: it resolves every secret reference (printing only fingerprints),
// logs in to Vault and reaches the store.
func checkOnline(ctx context.Context, cfg *config.Config) []onlineCheck {
	var checks []onlineCheck
	var sources keys.Source = keys.DefaultSources()
	vaultCheck, client := checkVault(ctx, cfg)
	checks = append(checks, vaultCheck)
	if client != nil {
		defer client.Close()
		sources = vault.Sources{Base: keys.DefaultSources(), Client: client}
	}
	for _, r := range secretRefs(cfg) {
		c := onlineCheck{item: r.field, what: string(r.ref)}
		switch {
		case r.ref.Scheme() == config.SchemeVault && client == nil:
			c.result = "not checked: no vault login"
		default:
			rctx, cancel := context.WithTimeout(ctx, cfg.Keys.FetchTimeout)
			s, err := sources.Resolve(rctx, string(r.ref))
			cancel()
			if err != nil {
				c.err = err
			} else {
				c.result = "ok, fingerprint " + s.Fingerprint()
			}
		}
		checks = append(checks, c)
	}
	return append(checks, checkStore(ctx, cfg))
}

// checkVault logs in to Vault when it is enabled and returns the client,
// logged in, or nil.
func checkVault(ctx context.Context, cfg *config.Config) (onlineCheck, *vault.Client) {
	vc := cfg.Vault
	c := onlineCheck{item: "vault", what: vc.Address}
	if !vc.Enabled {
		c.what, c.result = "-", "not checked: vault is disabled"
		return c, nil
	}
	au := vault.Auth{Method: vc.Auth.Method, Role: vc.Auth.Role, TokenFile: vc.Auth.TokenFile, Mount: vc.Auth.Mount}
	for _, a := range []struct {
		ref config.SecretRef
		to  *keys.Secret
	}{{vc.Auth.Token, &au.Token}, {vc.Auth.RoleID, &au.RoleID}, {vc.Auth.SecretID, &au.SecretID}} {
		if a.ref.IsZero() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, cfg.Keys.FetchTimeout)
		s, err := keys.DefaultSources().Resolve(rctx, string(a.ref))
		cancel()
		if err != nil {
			c.err = fmt.Errorf("vault auth: %w", err)
			return c, nil
		}
		*a.to = s
	}
	client, err := vault.New(vault.Options{Address: vc.Address, CACert: vc.CACert, ClientCert: vc.ClientCert,
		ClientKey: vc.ClientKey, TLSServerName: vc.TLSServerName, Namespace: vc.Namespace, Timeout: vc.Timeout,
		Auth: au, Log: zap.NewNop()})
	if err != nil {
		c.err = err
		return c, nil
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.Keys.FetchTimeout)
	defer cancel()
	if err := client.Start(lctx); err != nil {
		client.Close()
		c.err = fmt.Errorf("login: %w", err)
		return c, nil
	}
	c.result = "ok, logged in with " + methodName(vc.Auth.Method)
	return c, client
}

// methodName names a Vault auth method for the report.
func methodName(m string) string {
	if m == "" {
		return "token"
	}
	return m
}

// checkStore reaches the store: a PING to Redis, or a look at the embedded
// store's directory and file, which are not opened: a running veil may
// hold them.
func checkStore(ctx context.Context, cfg *config.Config) onlineCheck {
	sc := cfg.Store
	if sc.Type == "redis" {
		resolve := func(ref config.SecretRef) (keys.Secret, error) {
			rctx, cancel := context.WithTimeout(ctx, cfg.Keys.FetchTimeout)
			defer cancel()
			return keys.DefaultSources().Resolve(rctx, string(ref))
		}
		where := store.RedisOptions{Addr: sc.Addr, Addrs: sc.Addrs, SentinelMaster: sc.Sentinel.Master, SentinelAddrs: sc.Sentinel.Addrs}
		c := onlineCheck{item: "store", what: "redis " + where.Servers()}
		o, err := app.RedisStoreOptions(sc, resolve)
		if err != nil {
			c.err = err
			return c
		}
		// The failure is reported on the store's line; go-redis would
		// also print it.
		redis.SetLogger(quietRedis{})
		r, err := store.NewRedis(o)
		if err != nil {
			c.err = err
			return c
		}
		defer func() { _ = r.Close() }()
		if err := r.Ping(ctx); err != nil {
			c.err = err
			return c
		}
		c.result = "ok, answers PING"
		return c
	}
	c := onlineCheck{item: "store", what: "embedded " + sc.DataDir}
	if sc.DataDir == "" {
		c.what, c.result = "embedded", "not checked: kept in memory, nothing to reach"
		return c
	}
	c.result, c.err = checkDataDir(sc.DataDir)
	return c
}

// quietRedis drops go-redis's own messages.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// storeFile is the embedded store's file in its data directory.
const storeFile = "veil.db"

// checkDataDir checks that the embedded store can use dir: it is a
// writable directory, or can be created, and its file, if there, is a
// regular file veil can read and write.
func checkDataDir(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(dir)
		for {
			pfi, perr := os.Stat(parent)
			if perr == nil {
				if !pfi.IsDir() {
					return "", fmt.Errorf("cannot create %s: %s is not a directory", dir, parent)
				}
				if err := writable(parent); err != nil {
					return "", fmt.Errorf("cannot create %s: %w", dir, err)
				}
				return "ok, veil will create it", nil
			}
			if !errors.Is(perr, fs.ErrNotExist) || parent == filepath.Dir(parent) {
				return "", fmt.Errorf("cannot create %s: %w", dir, perr)
			}
			parent = filepath.Dir(parent)
		}
	}
	if err != nil {
		return "", fmt.Errorf("cannot use %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	if err := writable(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, storeFile)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "ok, writable; veil will create " + storeFile, nil
	}
	if err != nil {
		return "", err
	}
	_ = f.Close()
	return "ok, " + storeFile + " is readable and writable", nil
}

// writable checks that files can be created in dir by creating one.
func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".veil-validate-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	_ = f.Close()
	return os.Remove(f.Name())
}

// secretRefs lists every secret reference the config holds, with the path
// of its field (providers[0].api_key), in the config's order.
func secretRefs(cfg *config.Config) []namedRef {
	var out []namedRef
	walkRefs(reflect.ValueOf(cfg).Elem(), "", &out)
	return out
}

var secretRefType = reflect.TypeFor[config.SecretRef]()

func walkRefs(v reflect.Value, path string, out *[]namedRef) {
	if v.Type() == secretRefType {
		if r := config.SecretRef(v.String()); !r.IsZero() {
			*out = append(*out, namedRef{field: path, ref: r})
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkRefs(v.Elem(), path, out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch {
			case name == "-":
				continue
			case strings.Contains(opts, "inline"):
				walkRefs(v.Field(i), path, out)
				continue
			case name == "":
				name = strings.ToLower(f.Name)
			}
			if path != "" {
				name = path + "." + name
			}
			walkRefs(v.Field(i), name, out)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkRefs(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		ks := v.MapKeys()
		sort.Slice(ks, func(i, j int) bool { return fmt.Sprint(ks[i]) < fmt.Sprint(ks[j]) })
		for _, k := range ks {
			walkRefs(v.MapIndex(k), fmt.Sprintf("%s.%v", path, k), out)
		}
	}
}

// printOnline writes the checks as a table and returns an error naming how
// many failed.
func printOnline(w io.Writer, checks []onlineCheck) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tWHAT\tRESULT")
	failed := 0
	for _, c := range checks {
		result := c.result
		if c.err != nil {
			failed++
			result = "FAILED: " + oneLine(c.err.Error())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.item, dashIfEmpty(c.what), result)
	}
	_ = tw.Flush()
	if failed > 0 {
		return fmt.Errorf("%d of %d online checks failed", failed, len(checks))
	}
	return nil
}

// onlineTimeout bounds all the online checks of a config together.
const onlineTimeout = 2 * time.Minute
