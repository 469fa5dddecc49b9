package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// dialFunc opens a transport client to one server's API address.
type dialFunc func(addr string) (transport.Client, error)

// Client talks to one commitlog cluster. It learns the cluster's servers
// from GetServers, sends writes straight to the leader, follows NotLeader
// redirects at once, refreshes its view of the cluster after failures and
// every refresh interval, spreads reads according to its ReadPolicy, and
// keeps one connection per server address until Close.
//
// Each Client keeps its own view of its own cluster: two Clients never share
// leader information. A Client is safe for concurrent use. It owns one
// background goroutine (the periodic refresh), stopped by Close.
type Client struct {
	opts  options
	seeds []string
	dial  dialFunc

	ctx    context.Context // canceled by Close: ends streams and retries
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[string]transport.Client
	servers []Server // last list learned, in the order a server sent it
	leader  string   // API address of the leader; "" when unknown
	closed  bool
	refresh *refreshCall // the refresh under way, if any
	// producers are the Producers made by NewProducer and not closed yet:
	// Close closes them, so that none outlives the client.
	producers map[*Producer]struct{}
	// clusterID is the cluster the client serves: WithClusterID's, else the
	// first one a server named. verified lists the addresses whose
	// connection answered with it (or with none) since their last failure.
	clusterID string
	verified  map[string]bool

	rr atomic.Uint64 // round-robin cursor of reads
}

// maxRefreshAttempt bounds one GetServers call of a refresh round.
const maxRefreshAttempt = 2 * time.Second

// refreshCall is one GetServers round shared by every caller that asks for
// a refresh while it runs.
type refreshCall struct {
	done chan struct{}
	err  error
}

// New returns a Client for the cluster that serves at addrs (API addresses
// "host:port" of one or more of its servers; more seeds survive more dead
// servers). It asks the seeds for the server list before returning, within
// ctx and the retry budget, and fails with an error wrapping ErrUnavailable
// when none answers; with the server's PermissionDenied or Unauthenticated
// (transport.CodeOf), at once, when it refuses the caller; ErrNoAddresses when addrs is empty; ErrInvalidAddress
// when one is not "host:port" (see CheckAddress); ErrInvalidOption for a bad option. Close the
// Client when done.
func New(ctx context.Context, addrs []string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	seeds := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if a != "" && !slices.Contains(seeds, a) {
			seeds = append(seeds, a)
		}
	}
	if len(seeds) == 0 {
		return nil, ErrNoAddresses
	}
	for _, a := range seeds {
		// At once: a malformed address would otherwise be retried for the whole budget.
		if err := CheckAddress(a); err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrInvalidAddress, a, err)
		}
	}
	c := &Client{
		opts:  o,
		seeds: seeds,
		dial:  dialer(&o),
		conns: make(map[string]transport.Client),

		producers: make(map[*Producer]struct{}),
		clusterID: o.clusterID,
		verified:  make(map[string]bool),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.refreshWithRetry(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if o.refreshInterval > 0 {
		c.wg.Add(1)
		go c.refreshLoop()
	}
	return c, nil
}

// CheckAddress reports why addr is not a server address New takes: "host:port", its port a
// number from 1 to 65535 or a service name ("https"); nil when it is one. New refuses such an
// address at once (ErrInvalidAddress) rather than dial it for its whole retry budget.
func CheckAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 1 || n > 65535 {
			return fmt.Errorf("port %d is out of range: want 1 to 65535", n)
		}
		return nil
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q is neither a number nor a service name: %v", port, err)
	}
	return nil
}

// Close stops the background refresh, ends the client's streams, fails
// calls in flight, closes the Producers made from it that are still open
// (their pending records fail with ErrClosed, later Sends too) and closes
// every connection. It is idempotent; it returns the first error of closing
// a connection. Called while a Producer's callback runs (from one, say), it
// does not wait for that Producer's goroutines to end.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.conns
	c.conns = nil
	producers := c.producers
	c.producers = nil
	c.mu.Unlock()
	c.cancel()
	// Every request of a Producer now fails at once with ErrClosed: closing
	// it completes its records and stops its goroutines without delay.
	for p := range producers {
		if p.callbacks.Load() > 0 {
			// Perhaps called from one of its callbacks, on a sending
			// goroutine, which waiting for them would wait for: they end
			// on their own, every request failing at once.
			p.stop()
			continue
		}
		p.Close()
	}
	c.wg.Wait()
	var errs []error
	for addr, tc := range conns {
		if err := tc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Client) refreshLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.refreshInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			if err := c.refreshServers(c.ctx); err != nil && c.ctx.Err() == nil {
				c.opts.logger.Warn("refresh server list", "err", err)
			}
		}
	}
}

// conn returns the pooled connection to addr, opening it if needed.
func (c *Client) conn(addr string) (transport.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if tc, ok := c.conns[addr]; ok {
		return tc, nil
	}
	tc, err := c.dial(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %w", ErrUnavailable, addr, err)
	}
	c.conns[addr] = tc
	return tc, nil
}

// snapshot returns the current view: leader address and servers.
func (c *Client) snapshot() (string, []Server) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader, c.servers
}

// setLeader records addr as the leader's address (from a redirect).
func (c *Client) setLeader(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = addr
}

// forgetLeader drops the leader if it is still addr.
func (c *Client) forgetLeader(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == addr {
		c.leader = ""
	}
}

// candidates lists the addresses to ask for the server list, best first: the
// leader, the other known servers, then the seeds.
func (c *Client) candidates() []string {
	leader, servers := c.snapshot()
	out := make([]string, 0, len(servers)+len(c.seeds)+1)
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	add(leader)
	for _, s := range servers {
		add(s.Addr)
	}
	for _, s := range c.seeds {
		add(s)
	}
	return out
}

// refreshServers asks the cluster for its server list once (each candidate
// in turn until one names a leader) and updates the view. Concurrent callers
// share one round.
func (c *Client) refreshServers(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	call := c.refresh
	if call == nil {
		call = &refreshCall{done: make(chan struct{})}
		c.refresh = call
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			call.err = c.doRefresh()
			c.mu.Lock()
			c.refresh = nil
			c.mu.Unlock()
			close(call.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// doRefresh runs one refresh round, bounded by the client's lifetime and
// the request timeout of each attempt.
func (c *Client) doRefresh() error {
	var errs []error
	var leaderless []Server
	inCluster := false // an answering server listed a configuration (some server)
	for _, addr := range c.candidates() {
		tc, err := c.conn(addr)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			errs = append(errs, err)
			continue
		}
		// A hung server must not hold the round up: GetServers is
		// cheap, so it gets a shorter bound than other requests.
		timeout := maxRefreshAttempt
		if c.opts.requestTimeout > 0 {
			timeout = min(timeout, c.opts.requestTimeout)
		}
		actx, cancel := context.WithTimeout(c.ctx, timeout)
		resp, err := tc.GetServers(actx, &logv1.GetServersRequest{})
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return ErrClosed
			}
			errs = append(errs, fmt.Errorf("get servers from %s: %w", addr, c.explain(err)))
			continue
		}
		if err := c.checkCluster(addr, resp.GetClusterId()); err != nil {
			c.opts.logger.Warn("refusing a server of another cluster", "addr", addr, "err", err)
			errs = append(errs, err)
			continue
		}
		servers := serversFromProto(resp.GetServers())
		inCluster = inCluster || len(servers) > 0
		leader := ""
		for _, s := range servers {
			if s.IsLeader {
				leader = s.Addr
			}
		}
		if leader == "" {
			if leaderless == nil {
				leaderless = servers
			}
			continue
		}
		c.mu.Lock()
		c.servers, c.leader = servers, leader
		c.mu.Unlock()
		return nil
	}
	if leaderless != nil {
		c.mu.Lock()
		c.servers, c.leader = leaderless, ""
		c.mu.Unlock()
		if !inCluster {
			// A new server that has not bootstrapped or joined a cluster yet lists nobody, not
			// even itself: "no leader" alone sent users looking for a failure.
			return fmt.Errorf("%w: no leader known by any server: %w", ErrUnavailable, errNotInCluster)
		}
		return fmt.Errorf("%w: no leader known by any server", ErrUnavailable)
	}
	for _, err := range errs {
		if refusedCaller(err) {
			// The caller itself is refused: asking again, or another server, answers the same,
			// and "cluster unavailable" would send the user looking at the servers.
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// refusedCaller reports whether err is a server's refusal of the caller (PermissionDenied,
// Unauthenticated): returned, never retried (see the README's table).
func refusedCaller(err error) bool {
	code := transport.CodeOf(err)
	return code == transport.PermissionDenied || code == transport.Unauthenticated
}

// refreshWithRetry refreshes until a leader is known, the retry budget is
// spent or ctx ends. It succeeds when any server answered, even without a
// leader, if the budget runs out: reads can still be served.
func (c *Client) refreshWithRetry(ctx context.Context) error {
	// cause is the last round's own error: a round that ctx cut short says only ctx's, and
	// the reason of the rounds before (a TLS or transport mismatch, say) must not be lost.
	var err, cause error
	for attempt := 0; ; attempt++ {
		err = c.refreshServers(ctx)
		if err == nil {
			return nil
		}
		if err != ctx.Err() {
			cause = err
		}
		if errors.Is(err, ErrClosed) || refusedCaller(err) || ctx.Err() != nil || attempt >= c.opts.maxRetries {
			break
		}
		if err := c.backoff(ctx, attempt); err != nil {
			break
		}
	}
	if _, servers := c.snapshot(); len(servers) > 0 {
		return nil
	}
	if ctx.Err() != nil {
		if cause == nil {
			cause = err
		}
		if errors.Is(cause, ErrUnavailable) {
			// Said once: "cluster unavailable: context deadline exceeded: cluster
			// unavailable: get servers from …" named it twice.
			return fmt.Errorf("%w (%w)", cause, ctx.Err())
		}
		return fmt.Errorf("%w: %w: %w", ErrUnavailable, ctx.Err(), cause)
	}
	return err
}

// attemptContext bounds one attempt by the request timeout.
func (c *Client) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.opts.requestTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.requestTimeout)
}

// backoff waits before retry number attempt (0-based), or returns ctx's
// error or ErrClosed.
func (c *Client) backoff(ctx context.Context, attempt int) error {
	d := c.opts.backoffBase << min(attempt, 30)
	if d <= 0 || d > c.opts.backoffMax {
		d = c.opts.backoffMax
	}
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// merged returns a context that ends when ctx or the client ends.
func (c *Client) merged(ctx context.Context) (context.Context, context.CancelFunc) {
	mctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return mctx, func() {
		stop()
		cancel()
	}
}

// isClosed reports whether Close was called.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// onLeader runs op against the leader with the write retry policy: a
// redirect is followed at once, a refusal before proposal is retried after a
// backoff and a refresh, an unknown outcome is returned as is. write says
// whether op changes the log.
func (c *Client) onLeader(ctx context.Context, write bool, op func(context.Context, transport.Client) error) error {
	return c.onLeaderAt(ctx, write, nil, op)
}

// onLeaderAt is onLeader that, when op succeeds and at is not nil, sets *at to
// the address of the server that answered it (the client's idea of the leader
// may have changed meanwhile).
func (c *Client) onLeaderAt(ctx context.Context, write bool, at *string, op func(context.Context, transport.Client) error) error {
	ctx, cancel := c.merged(ctx)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		if c.isClosed() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			// Ended before this attempt was sent: nothing to doubt.
			return errors.Join(err, last)
		}
		addr, _ := c.snapshot()
		if addr == "" {
			if err := c.refreshServers(ctx); err != nil && errors.Is(err, ErrClosed) {
				return err
			}
			addr, _ = c.snapshot()
		}
		if addr == "" {
			// No server knows a leader: nothing was sent, wait for
			// the election.
			err := fmt.Errorf("%w: no leader known", ErrUnavailable)
			if last != nil {
				err = fmt.Errorf("%w (last error: %w)", err, last)
			}
			if attempt >= c.opts.maxRetries {
				return err
			}
			if berr := c.backoff(ctx, attempt); berr != nil {
				if errors.Is(berr, ErrClosed) {
					return berr
				}
				return fmt.Errorf("%w: %w", berr, err)
			}
			continue
		}
		err := c.attempt(ctx, addr, op)
		if err == nil {
			if at != nil {
				*at = addr
			}
			return nil
		}
		var v verdict
		v, err = classify(ctx, err, write)
		if c.isClosed() {
			if v == unknown {
				return fmt.Errorf("%w: %w", ErrClosed, err)
			}
			return ErrClosed
		}
		last = err
		if v == unknown {
			// The leader failed mid-request (it may be gone, or have lost leadership):
			// the next write learns the cluster again instead of reusing a connection
			// that may be dead, which would make that write's outcome unknown too.
			c.forgetLeader(addr)
		}
		if v == fatal || v == unknown || attempt >= c.opts.maxRetries {
			return err
		}
		if nl, ok := errors.AsType[*NotLeaderError](err); ok && v == redirect && nl.LeaderAddr != addr {
			c.setLeader(nl.LeaderAddr)
			continue
		}
		// Refused or unreachable: forget this leader, wait, and
		// learn the cluster again.
		c.forgetLeader(addr)
		if err := c.backoff(ctx, attempt); err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			return fmt.Errorf("%w: %w", err, last)
		}
		if err := c.refreshServers(ctx); err != nil {
			c.opts.logger.Debug("refresh after failure", "err", err)
		}
	}
}

// orAnswered is err, or answered (an error a server answered itself, nil if none did) when err
// is a connection that could not be made.
func orAnswered(err, answered error) error {
	if answered != nil && neverSent(err) {
		return answered
	}
	return err
}

// attempt runs op once against addr, bounded by the request timeout.
func (c *Client) attempt(ctx context.Context, addr string, op func(context.Context, transport.Client) error) error {
	tc, err := c.conn(addr)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		return &notSentError{err}
	}
	actx, cancel := c.attemptContext(ctx)
	defer cancel()
	if err := c.verify(actx, addr, tc); err != nil {
		return &notSentError{c.explain(err)}
	}
	if err := op(actx, tc); err != nil {
		c.unverify(addr) // it may have restarted as another server
		return c.explain(err)
	}
	return nil
}

// ClusterID returns the ID of the cluster the client serves: the one given
// with WithClusterID, else the first one a server named ("" when the servers
// are older than cluster IDs).
func (c *Client) ClusterID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clusterID
}

// checkCluster compares the cluster ID a server at addr answered with to the
// client's, remembering the first one seen, and marks addr verified. A server
// that names no cluster (not in one yet, or older than cluster IDs) passes.
func (c *Client) checkCluster(addr, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id != "" && c.clusterID == "" {
		c.clusterID = id
	}
	if id != "" && id != c.clusterID {
		delete(c.verified, addr)
		return &ClusterMismatchError{Addr: addr, Want: c.clusterID, Got: id}
	}
	if c.verified != nil {
		c.verified[addr] = true
	}
	return nil
}

// verify makes sure the server at addr belongs to the client's cluster,
// asking it (GetServers) unless its connection already answered since its
// last failure.
func (c *Client) verify(ctx context.Context, addr string, tc transport.Client) error {
	c.mu.Lock()
	ok := c.verified[addr]
	c.mu.Unlock()
	if ok {
		return nil
	}
	resp, err := tc.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		return fmt.Errorf("%w: ask %s for its cluster: %w", ErrUnavailable, addr, err)
	}
	return c.checkCluster(addr, resp.GetClusterId())
}

// unverify makes the next request to addr check its cluster again.
func (c *Client) unverify(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.verified, addr)
}

// readTargets lists the addresses a read may go to, in the order to try
// them, according to the read policy; the leader first for a linearizable
// read.
func (c *Client) readTargets(linearizable bool) []string {
	leader, servers := c.snapshot()
	var followers []string
	for _, s := range servers {
		if s.Addr != "" && s.Addr != leader && !slices.Contains(followers, s.Addr) {
			followers = append(followers, s.Addr)
		}
	}
	rotate := func(s []string) []string {
		if len(s) < 2 {
			return s
		}
		k := int(c.rr.Add(1) % uint64(len(s)))
		return append(s[k:len(s):len(s)], s[:k]...)
	}
	var out []string
	switch {
	case linearizable || c.opts.readPolicy == ReadLeader:
		if leader != "" {
			out = append(out, leader)
		}
		out = append(out, followers...)
	case c.opts.readPolicy == ReadFollowers:
		out = rotate(followers)
		if leader != "" {
			out = append(out, leader)
		}
	default: // ReadAny
		all := followers
		if leader != "" {
			all = append([]string{leader}, followers...)
		}
		out = rotate(all)
	}
	for _, s := range c.seeds {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// onReplica runs the read op with the read retry policy: each retry moves on
// to the next target; a redirect (a follower refusing a linearizable read)
// goes to the named leader at once. A DataLoss refusal (a replica whose log
// diverged or whose copy is corrupt) moves on to a target that has not
// refused at once, without a backoff and without spending the retry budget:
// the others hold the record. Once every target refused so, the DataLoss is
// returned.
func (c *Client) onReplica(ctx context.Context, linearizable bool, op func(context.Context, transport.Client) error) error {
	ctx, cancel := c.merged(ctx)
	defer cancel()
	targets := c.readTargets(linearizable)
	next := 0
	redirectTo := ""
	refused := map[string]bool{} // targets that answered DataLoss
	// own holds, per target, the error it answered itself (not a redirect) the last time it
	// failed a retryable attempt of this read.
	own := map[string]error{}
	var last error
	// answered is the latest error a server answered itself: what is returned when the retries
	// end on a server that could not be reached ("no leader" from the one server up, say, says
	// more than a connection refused by one that is down).
	var answered error
	for attempt := 0; ; {
		if c.isClosed() {
			return ErrClosed
		}
		addr := redirectTo
		if addr == "" {
			addr = targets[next%len(targets)]
			for i := 0; refused[addr] && i < len(targets); i++ {
				next++
				addr = targets[next%len(targets)]
			}
			next++
		}
		redirectTo = ""
		err := c.attempt(ctx, addr, op)
		if err == nil {
			return nil
		}
		var v verdict
		v, err = classify(ctx, err, false)
		if c.isClosed() {
			return ErrClosed
		}
		nl, isNL := errors.AsType[*NotLeaderError](err)
		switch {
		case v == redirect && isNL && own[nl.LeaderAddr] != nil:
			// A follower names as leader a server that failed this read itself (a leader
			// whose state machine stopped, say): its own answer says why, the redirect only
			// who leads. Back to it after a backoff, not at once: bouncing between it and
			// its followers spent the retries in a hot loop and ended on the redirect
			// ("not the leader, leader is X", of X itself).
			err, v = own[nl.LeaderAddr], retry
			redirectTo = nl.LeaderAddr
		case v == retry && transport.CodeOf(err) != transport.DataLoss:
			own[addr] = err
		case v == redirect:
			delete(own, addr) // it no longer leads
		}
		last = err
		if !neverSent(err) {
			answered = err
		}
		if v == retry && transport.CodeOf(err) == transport.DataLoss {
			refused[addr] = true
			if !slices.ContainsFunc(targets, func(a string) bool { return !refused[a] }) {
				return err // every server refused it
			}
			continue
		}
		if v == fatal {
			return err
		}
		if attempt >= c.opts.maxRetries {
			return orAnswered(err, answered)
		}
		if v == redirect && isNL && nl.LeaderAddr != addr {
			c.setLeader(nl.LeaderAddr)
			redirectTo = nl.LeaderAddr
			attempt++
			continue
		}
		if redirectTo == "" {
			c.forgetLeader(addr)
		}
		// Without a backoff a read would spin over the targets when all
		// are down; with one a dead replica costs one short wait.
		if err := c.backoff(ctx, attempt); err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			return fmt.Errorf("%w: %w", err, orAnswered(last, answered))
		}
		attempt++
		if next%len(targets) == 0 {
			// Every target failed once: learn the cluster again.
			if err := c.refreshServers(ctx); err == nil {
				targets = c.readTargets(linearizable)
				next = 0
			}
		}
	}
}
