// Package casbin implements authz.Authorizer with casbin
// (github.com/casbin/casbin/v2): a model file says how a request
// (subject, object, action) is matched against policy rules, a CSV policy
// file lists the rules.
//
// The default model is embedded (see DefaultModel): the seed project's
// model, extended so that a rule may use "*" as subject or object to match
// any. The seed's own model.conf and policy.csv work unchanged.
//
// Decisions are deny by default and fail closed: New refuses a model or
// policy that does not parse, and Reload keeps the last good policy when the
// new one does not. Policy files are parsed strictly (see MaxPolicyBytes and
// the errors below); requests are validated with authz.ValidateRequest, so
// a subject containing a newline, or any control character, is refused
// before casbin sees it, and a subject containing commas or quotes is one
// opaque string that can only equal a rule's subject verbatim.
package casbin

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	casbinv2 "github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"

	"github.com/commitlog-go/commitlog/authz"
)

//go:embed model.conf
var defaultModel string

// DefaultModel returns the text of the embedded default model, used when
// Config.ModelFile is empty. Write it to a file to start a custom model.
func DefaultModel() string { return defaultModel }

// Errors returned by New and Reload. Test for them with errors.Is; the
// message says which file, and for a policy which line, is wrong.
var (
	// ErrNoPolicyFile means Config.PolicyFile is empty. There is no implicit
	// empty policy: a server that wants to allow everything says so with
	// authz.AllowAll.
	ErrNoPolicyFile = errors.New("authz/casbin: no policy file configured")
	// ErrInvalidModel means the model file is unreadable or does not define
	// a usable model: the sections request_definition (with exactly three
	// fields: subject, object, action), policy_definition, policy_effect and
	// matchers, with an effect and a matcher casbin can evaluate.
	ErrInvalidModel = errors.New("authz/casbin: invalid model")
	// ErrInvalidPolicy means the policy file does not parse against the
	// model (see the strict rules in the package documentation).
	ErrInvalidPolicy = errors.New("authz/casbin: invalid policy")
	// ErrInvalidConfig means a Config field is unusable; the message names
	// it. An empty PolicyFile matches ErrNoPolicyFile too.
	ErrInvalidConfig = errors.New("authz/casbin: invalid config")
)

// Config says where the model and the policy are. Both files are read by
// New and again by every Reload.
type Config struct {
	// ModelFile is the path of a casbin model (.conf). Empty means the
	// embedded default model (DefaultModel). The request definition must
	// have exactly three fields (subject, object, action).
	ModelFile string
	// PolicyFile is the path of the CSV policy. Required.
	PolicyFile string
}

// validate checks cfg (whose zero ModelFile means the embedded model: there
// is no other default to apply). The error names the field and wraps
// ErrInvalidConfig.
func (cfg Config) validate() error {
	switch {
	case cfg.PolicyFile == "":
		return fmt.Errorf("%w: PolicyFile is empty: %w", ErrInvalidConfig, ErrNoPolicyFile)
	case cfg.ModelFile != "" && filepath.Clean(cfg.ModelFile) == filepath.Clean(cfg.PolicyFile):
		return fmt.Errorf("%w: ModelFile %q is the PolicyFile: a model and a policy are two files", ErrInvalidConfig, cfg.ModelFile)
	}
	return nil
}

// Authorizer is an authz.Authorizer backed by a casbin enforcer.
//
// Authorize is safe for concurrent use, also concurrently with Reload: each
// decision uses one complete policy, either the old or the new one.
// Decisions are cached per loaded policy (up to MaxCachedDecisions), so a
// repeated request costs a map lookup rather than a scan of every rule. The
// Authorizer starts no goroutines and holds no open files, so it needs no
// Close.
type Authorizer struct {
	cfg Config

	reloadMu sync.Mutex                 // serializes Reload
	gen      atomic.Pointer[generation] // never nil after New
}

// MaxCachedDecisions bounds the decision cache of one policy generation.
// Past it, new (subject, object, action) triples are evaluated by casbin on
// every request: memory stays bounded whatever clients send, and only speed
// degrades.
const MaxCachedDecisions = 4096

// generation is one loaded model+policy and the decisions made with it.
// Decisions are pure functions of the request and the immutable policy, so
// they can be cached until the next Reload replaces the generation.
type generation struct {
	enf       *casbinv2.SyncedEnforcer
	objects   []string // every object the policy's rules name, and authz.ObjectAll
	groups    bool     // some rule's object starts with authz.ObjectGroupPrefix: group checks on
	decisions sync.Map // decisionKey -> bool
	cached    atomic.Int64
}

// decisionKey joins the three fields with NUL, which ValidateRequest keeps
// out of every field, so distinct triples get distinct keys.
func decisionKey(subject, object, action string) string {
	return subject + "\x00" + object + "\x00" + action
}

// enforce returns casbin's decision, from the cache when possible.
func (g *generation) enforce(subject, object, action string) (bool, error) {
	key := decisionKey(subject, object, action)
	if v, ok := g.decisions.Load(key); ok {
		return v.(bool), nil
	}
	ok, err := g.enf.Enforce(subject, object, action)
	if err != nil {
		return false, err
	}
	if g.cached.Load() < MaxCachedDecisions {
		if _, loaded := g.decisions.LoadOrStore(key, ok); !loaded {
			g.cached.Add(1)
		}
	}
	return ok, nil
}

// anyObject reports whether subject may perform action on one of the objects the policy
// names (or on authz.ObjectAll), from the cache when possible.
func (g *generation) anyObject(subject, action string) (bool, error) {
	key := decisionKey(subject, "\x00", action) // no object is empty or holds NUL
	if v, ok := g.decisions.Load(key); ok {
		return v.(bool), nil
	}
	allowed := false
	for _, obj := range g.objects {
		ok, err := g.enforce(subject, obj, action)
		if err != nil {
			return false, err
		}
		if ok {
			allowed = true
			break
		}
	}
	if g.cached.Load() < MaxCachedDecisions {
		if _, loaded := g.decisions.LoadOrStore(key, allowed); !loaded {
			g.cached.Add(1)
		}
	}
	return allowed, nil
}

var (
	_ authz.Authorizer          = (*Authorizer)(nil)
	_ authz.AnyObjectAuthorizer = (*Authorizer)(nil)
	_ authz.GroupAuthorizer     = (*Authorizer)(nil)
)

// New loads the model and the policy and returns an Authorizer that allows
// exactly what the policy allows.
//
// It returns an error wrapping ErrInvalidConfig (with ErrNoPolicyFile for an
// empty PolicyFile), ErrInvalidModel or
// ErrInvalidPolicy (or the I/O error, for example fs.ErrNotExist) when the
// configuration cannot be used; it never returns a permissive Authorizer
// instead.
func New(cfg Config) (*Authorizer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &Authorizer{cfg: cfg}
	enf, err := a.load()
	if err != nil {
		return nil, err
	}
	gen, err := newGeneration(enf)
	if err != nil {
		return nil, err
	}
	a.gen.Store(gen)
	return a, nil
}

// Reload reads the model and policy files again and, if both parse, makes
// them the policy for subsequent decisions. If either does not, Reload
// returns the error (as New would) and the Authorizer keeps deciding with
// the last good policy. Concurrent Reloads are serialized.
//
// Replace policy files atomically (write a new file, then rename it over the
// old one): a file caught half-written may still parse, as a different
// policy.
func (a *Authorizer) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	enf, err := a.load()
	if err != nil {
		return fmt.Errorf("reload (keeping the previous policy): %w", err)
	}
	gen, err := newGeneration(enf)
	if err != nil {
		return fmt.Errorf("reload (keeping the previous policy): %w", err)
	}
	a.gen.Store(gen)
	return nil
}

// newGeneration wraps a loaded enforcer, listing the objects its rules name (the second field
// of each policy line: the request definition is subject, object, action).
func newGeneration(enf *casbinv2.SyncedEnforcer) (*generation, error) {
	rules, err := enf.GetPolicy()
	if err != nil {
		return nil, fmt.Errorf("%w: list the policy's objects: %w", ErrInvalidPolicy, err)
	}
	seen := map[string]bool{authz.ObjectAll: true}
	objects := []string{authz.ObjectAll}
	groups := false
	for _, r := range rules {
		if len(r) > 1 && !seen[r[1]] {
			seen[r[1]] = true
			objects = append(objects, r[1])
			groups = groups || strings.HasPrefix(r[1], authz.ObjectGroupPrefix)
		}
	}
	return &generation{enf: enf, objects: objects, groups: groups}, nil
}

// Authorize reports whether subject may perform action on object.
//
// It returns nil when a policy rule allows the request; a *authz.DeniedError
// (matching authz.ErrDenied) when none does or when the request fails
// authz.ValidateRequest; ctx's error, wrapped, when ctx is already done; or
// another error if casbin fails to evaluate the request, which callers must
// treat as a refusal. Safe for concurrent use.
func (a *Authorizer) Authorize(ctx context.Context, subject, object, action string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authz/casbin: authorize: %w", err)
	}
	if err := authz.ValidateRequest(subject, object, action); err != nil {
		return err
	}
	ok, err := a.gen.Load().enforce(subject, object, action)
	if err != nil {
		return fmt.Errorf("authz/casbin: enforce (subject %q, object %q, action %q): %w",
			subject, object, action, err)
	}
	if !ok {
		return &authz.DeniedError{Subject: subject, Object: object, Action: action}
	}
	return nil
}

// AuthorizeAnyObject reports whether subject may perform action on some object: one that a
// policy rule names, or authz.ObjectAll (see authz.AnyObjectAuthorizer). With a pattern-
// matching model a rule's object is asked as written.
//
// It returns nil when one is allowed; otherwise errors as Authorize does, the
// *authz.DeniedError naming authz.ObjectAll. Safe for concurrent use.
func (a *Authorizer) AuthorizeAnyObject(ctx context.Context, subject, action string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authz/casbin: authorize: %w", err)
	}
	if err := authz.ValidateRequest(subject, authz.ObjectAll, action); err != nil {
		return err
	}
	ok, err := a.gen.Load().anyObject(subject, action)
	if err != nil {
		return fmt.Errorf("authz/casbin: enforce (subject %q, any object, action %q): %w", subject, action, err)
	}
	if !ok {
		return &authz.DeniedError{Subject: subject, Object: authz.ObjectAll, Action: action}
	}
	return nil
}

// GroupChecks reports whether the current policy names a group object: a rule whose object
// starts with authz.ObjectGroupPrefix (see authz.GroupAuthorizer). Reload decides it again.
func (a *Authorizer) GroupChecks() bool { return a.gen.Load().groups }

// AuthorizeGroup decides whether subject may perform action on consumer group group (see
// authz.GroupAuthorizer), with one policy: nil when it names no group object (group checks
// off); otherwise nil when it allows the group's object (authz.GroupObject(group)) or
// authz.ObjectAll, which stands for every group whatever the model, as for topics. A group
// whose object no policy line can hold (a name with a character authz.ValidateField refuses,
// which group names may contain) is decided by authz.ObjectAll alone.
//
// A denial is a *authz.DeniedError naming the group's object; other errors as Authorize's.
// Safe for concurrent use.
func (a *Authorizer) AuthorizeGroup(ctx context.Context, subject, group, action string) error {
	gen := a.gen.Load()
	if !gen.groups {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authz/casbin: authorize: %w", err)
	}
	object := authz.GroupObject(group)
	if err := authz.ValidateRequest(subject, authz.ObjectAll, action); err != nil {
		if de, ok := errors.AsType[*authz.DeniedError](err); ok {
			de.Object = object // the denial names the group's object
		}
		return err
	}
	objects := []string{object, authz.ObjectAll}
	if authz.ValidateField(object) != nil {
		// A group name holding a character no policy line can (authz.ValidateField refuses
		// more than group names do): no rule names its object, and only the "*" rules, which
		// stand for every group, decide it.
		objects = objects[1:]
	}
	for _, obj := range objects {
		ok, err := gen.enforce(subject, obj, action)
		if err != nil {
			return fmt.Errorf("authz/casbin: enforce (subject %q, object %q, action %q): %w", subject, obj, action, err)
		}
		if ok {
			return nil
		}
	}
	return &authz.DeniedError{Subject: subject, Object: object, Action: action}
}

// load builds a new enforcer from the configured files. The result is
// complete and never mutated afterwards.
func (a *Authorizer) load() (*casbinv2.SyncedEnforcer, error) {
	m, err := loadModel(a.cfg.ModelFile)
	if err != nil {
		return nil, err
	}
	enf, err := casbinv2.NewSyncedEnforcer(m, &fileAdapter{path: a.cfg.PolicyFile})
	if err != nil {
		return nil, err // the adapter's errors already say what is wrong
	}
	enf.EnableAutoSave(false)
	// Evaluate one request so that an effect or matcher casbin cannot
	// evaluate fails here rather than on every request later. The control
	// characters make sure no rule names it: a model that allows it allows
	// what no rule allows (an effect such as !some(where (p.eft == deny)), a
	// matcher that ignores the request), and deny by default is the rule.
	ok, err := enf.Enforce("\x00probe", "\x00probe", "\x00probe")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidModel, modelName(a.cfg.ModelFile), err)
	}
	if ok {
		return nil, fmt.Errorf("%w: %s allows a request that no policy rule names (subject, object and action "+
			"matching no rule); commitlog denies by default: allow with rules, and deny with an effect such as "+
			"some(where (p.eft == allow)) && !some(where (p.eft == deny))", ErrInvalidModel, modelName(a.cfg.ModelFile))
	}
	return enf, nil
}

func modelName(path string) string {
	if path == "" {
		return "embedded default model"
	}
	return path
}

// loadModel parses the model file (or the embedded default) and checks the
// parts Authorize relies on.
func loadModel(path string) (model.Model, error) {
	text := defaultModel
	if path != "" {
		data, err := readBounded(path, MaxPolicyBytes, ErrInvalidModel)
		if err != nil {
			return nil, fmt.Errorf("authz/casbin: read model: %w", err)
		}
		text = string(data)
	}
	m, err := model.NewModelFromString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidModel, modelName(path), err)
	}
	r, err := m.GetAssertion("r", "r")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidModel, modelName(path), err)
	}
	if len(r.Tokens) != 3 {
		return nil, fmt.Errorf("%w: %s: request definition has %d fields, want 3 (subject, object, action)",
			ErrInvalidModel, modelName(path), len(r.Tokens))
	}
	for _, def := range [...][2]string{{"p", "p"}, {"e", "e"}, {"m", "m"}} {
		if _, err := m.GetAssertion(def[0], def[1]); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidModel, modelName(path), err)
		}
	}
	return m, nil
}
