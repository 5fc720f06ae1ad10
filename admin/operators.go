package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/wedsync/veil/keys"
)

// Role is what an operator may do on the admin API. Roles are ordered: a
// role allows everything the roles below it allow.
type Role int

const (
	// RoleViewer may read: every GET.
	RoleViewer Role = iota + 1
	// RoleOperator may also run operations: migrations, comparisons, key
	// refreshes and probes, cache purges.
	RoleOperator
	// RoleAdmin may do everything, including the run-time supplier
	// overrides that change who pays.
	RoleAdmin
)

var roleNames = [...]string{RoleViewer: "viewer", RoleOperator: "operator", RoleAdmin: "admin"}

// ParseRole returns the role named s: viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	for r, name := range roleNames {
		if name != "" && name == s {
			return Role(r), nil
		}
	}
	return 0, fmt.Errorf("unknown role %q: want viewer, operator or admin", s)
}

// String returns the role's name, as in the config.
func (r Role) String() string {
	if r.valid() {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// MarshalText encodes the role as its name.
func (r Role) MarshalText() ([]byte, error) {
	if !r.valid() {
		return nil, fmt.Errorf("invalid role %d", int(r))
	}
	return []byte(roleNames[r]), nil
}

// UnmarshalText decodes a role's name.
func (r *Role) UnmarshalText(b []byte) error {
	role, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = role
	return nil
}

// Allows reports whether a holder of r may do what needs at least least.
// An unknown role allows nothing and is allowed by nothing.
func (r Role) Allows(least Role) bool {
	return r.valid() && least.valid() && r >= least
}

func (r Role) valid() bool { return r >= RoleViewer && r <= RoleAdmin }

// Operator is who called the admin API: the name and role of the token
// sent. It never holds the token.
type Operator struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// Fields are the audit fields that name the operator.
func (o Operator) Fields() []zap.Field {
	return []zap.Field{zap.String("operator", o.Name), zap.Stringer("role", o.Role)}
}

// OperatorToken is one named admin token and its role, as configured.
type OperatorToken struct {
	Name  string
	Role  Role
	Token keys.Secret
}

// LegacyOperator is the name that the single admin.token of older
// configurations is known by; its role is RoleAdmin.
const LegacyOperator = "admin"

// Operators authenticates admin tokens to the operators they belong to.
// Only the tokens' SHA-256 digests are kept. A nil *Operators knows no
// one. It is safe for concurrent use.
type Operators struct {
	entries []operatorEntry
}

type operatorEntry struct {
	digest [sha256.Size]byte
	op     Operator
}

// NewOperators checks the tokens (names unique and not empty, roles known,
// tokens set and distinct) and returns their Operators.
func NewOperators(tokens []OperatorToken) (*Operators, error) {
	o := &Operators{entries: make([]operatorEntry, 0, len(tokens))}
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]string{}
	var errs []error
	for i, t := range tokens {
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("admin token %d: no name", i))
			continue
		case names[t.Name]:
			errs = append(errs, fmt.Errorf("admin token %q: the name is used twice", t.Name))
			continue
		case !t.Role.valid():
			errs = append(errs, fmt.Errorf("admin token %q: %s is not a role", t.Name, t.Role))
			continue
		case t.Token.IsZero():
			errs = append(errs, fmt.Errorf("admin token %q: the token is empty", t.Name))
			continue
		}
		names[t.Name] = true
		d := sha256.Sum256([]byte(t.Token.Reveal()))
		if other, dup := digests[d]; dup {
			errs = append(errs, fmt.Errorf("admin token %q: the same token as %q; every operator needs a token of its own", t.Name, other))
			continue
		}
		digests[d] = t.Name
		o.entries = append(o.entries, operatorEntry{digest: d, op: Operator{Name: t.Name, Role: t.Role}})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// Lookup returns the operator whose token is token. It compares the
// token's digest with every configured one in constant time, and always
// with all of them, so that the time taken tells nothing of which token
// matched or how close a guess came.
func (o *Operators) Lookup(token string) (Operator, bool) {
	if o == nil || token == "" {
		return Operator{}, false
	}
	got := sha256.Sum256([]byte(token))
	found := -1
	for i := range o.entries {
		eq := subtle.ConstantTimeCompare(got[:], o.entries[i].digest[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return Operator{}, false
	}
	return o.entries[found].op, true
}

// Len returns how many operators there are.
func (o *Operators) Len() int {
	if o == nil {
		return 0
	}
	return len(o.entries)
}
