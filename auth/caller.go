package auth

import (
	"fmt"
	"slices"
)

// MaxSupplierIDLen is the longest supplier ID veil accepts, in bytes.
const MaxSupplierIDLen = 128

// Caller is an app allowed to call veil, scoped to supplier IDs: either to
// every supplier or to a fixed set. Callers are immutable and safe for
// concurrent use.
type Caller struct {
	// Name identifies the caller in logs, metrics and error messages. For a
	// static caller it is the configured name; for a JWT caller it is the
	// sanitised caller claim.
	Name string

	all       bool     // every supplier is in scope
	suppliers []string // sorted and unique when !all
	one       [1]string
}

// Allows reports whether the caller may act for supplier. It is false for a
// malformed supplier ID (see ValidSupplierID), whatever the scope, and for a
// nil Caller. Allows does not allocate.
func (c *Caller) Allows(supplier []byte) bool {
	if c == nil || !ValidSupplierID(supplier) {
		return false
	}
	if c.all {
		return true
	}
	// A hand-written binary search: string(supplier) in a comparison does
	// not allocate, whereas passing it to a comparison function might.
	lo, hi := 0, len(c.suppliers)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.suppliers[m] < string(supplier) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(c.suppliers) && c.suppliers[lo] == string(supplier)
}

// Scope returns the caller's scope for admin output: ["*"] when every
// supplier is allowed, otherwise the sorted supplier IDs. The result is a
// copy the caller may modify.
func (c *Caller) Scope() []string {
	if c == nil {
		return nil
	}
	if c.all {
		return []string{"*"}
	}
	return slices.Clone(c.suppliers)
}

// newScopedCaller returns a static caller for a validated name and scope.
func newScopedCaller(name string, suppliers []string) (Caller, error) {
	if len(suppliers) == 0 {
		return Caller{}, fmt.Errorf("auth: caller %q has no suppliers: list supplier IDs or \"*\" for all", name)
	}
	for _, s := range suppliers {
		if s == "*" {
			if len(suppliers) != 1 {
				return Caller{}, fmt.Errorf("auth: caller %q lists \"*\" together with supplier IDs", name)
			}
			return Caller{Name: name, all: true}, nil
		}
	}
	sorted := slices.Clone(suppliers)
	slices.Sort(sorted)
	for i, s := range sorted {
		if !validSupplier(s) {
			return Caller{}, fmt.Errorf("auth: caller %q has an invalid supplier ID %q: %s", name, s, supplierRule)
		}
		if i > 0 && sorted[i-1] == s {
			return Caller{}, fmt.Errorf("auth: caller %q lists supplier %q twice", name, s)
		}
	}
	return Caller{Name: name, suppliers: sorted}, nil
}

// newSingleCaller returns a caller allowed to act for supplier alone, with a
// single allocation.
func newSingleCaller(name, supplier string) *Caller {
	c := &Caller{Name: name}
	c.one[0] = supplier
	c.suppliers = c.one[:]
	return c
}

// supplierRule describes a valid supplier ID for error messages.
const supplierRule = "use 1 to 128 characters from A-Z, a-z, 0-9, '.', '_' and '-'"

// ValidSupplierID reports whether id is a well-formed supplier ID: 1 to
// MaxSupplierIDLen bytes from A-Z, a-z, 0-9, '.', '_' and '-', and not "."
// or ".." (which would be path segments where keys are stored). It does
// not allocate.
func ValidSupplierID(id []byte) bool {
	return validSupplier(id)
}

func validSupplier[T ~string | ~[]byte](id T) bool {
	if len(id) == 0 || len(id) > MaxSupplierIDLen || string(id) == "." || string(id) == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !supplierByte[id[i]] {
			return false
		}
	}
	return true
}

// supplierByte marks the bytes allowed in a supplier ID.
var supplierByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
		t[c+'a'-'A'] = true
	}
	t['.'], t['_'], t['-'] = true, true, true
	return t
}()

// maxNameLen bounds caller names, key IDs and issuers taken from tokens.
const maxNameLen = 128

// nameByte marks the bytes kept when a name from a token is sanitised:
// enough for subjects such as "svc:billing", "auth0|abc", "a@b.example" or
// "spiffe://cluster/ns/app".
var nameByte = func() (t [256]bool) {
	t = supplierByte
	for _, c := range []byte(":@/|+=") {
		t[c] = true
	}
	return t
}()

// sanitizeName returns s with every byte outside nameByte replaced by '_'
// and truncated to maxNameLen bytes, so that a value from a token is safe to
// log and to show. It allocates only when it changes s.
func sanitizeName(s string) string {
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if !nameByte[s[i]] {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !nameByte[c] {
			b[i] = '_'
		}
	}
	return string(b)
}
