package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// approvalsAPI is what Approvals and MemoryApprovals both offer:
// commands.Approvals plus Ping and Pending. (store cannot import commands;
// cmd/bot's wiring checks the real interface at compile time.)
type approvalsAPI interface {
	Create(ctx context.Context, r Request) (Request, error)
	Get(ctx context.Context, id string) (Request, error)
	Transition(ctx context.Context, id string, from State, ch Change) (Request, error)
	ForMachine(ctx context.Context, machineID string) (Request, error)
	Due(ctx context.Context, limit int) ([]Request, error)
	FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error)
	Append(ctx context.Context, e Event) error
	History(ctx context.Context, requestID string) ([]Event, error)
	Ping(ctx context.Context) error
	Pending(ctx context.Context) (int, error)
}

var (
	_ approvalsAPI = (*Approvals)(nil)
	_ approvalsAPI = (*MemoryApprovals)(nil)
)

// approvalsUnderTest is one backend as the contract sees it.
type approvalsUnderTest struct {
	approvalsAPI
	// replica returns another instance with the same config over its own
	// connection pool: a second bot replica. The memory twin returns itself.
	replica func(t testing.TB) approvalsAPI
	// auditLen is the length of the global audit stream.
	auditLen func(t testing.TB) int64
}

// apClock is the injected clock. It drives record times everywhere; TTLs
// only in the memory twin (Redis expires keys on its own clock, so tests
// advance the clock and then poll with a deadline, which suits both).
type apClock struct {
	mu sync.Mutex
	t  time.Time
}

func newAPClock() *apClock {
	return &apClock{t: time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)}
}

func (c *apClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *apClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// apEventually polls cond until it holds or 10 s pass.
func apEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

func apMachine(i int) string { return fmt.Sprintf("%040x", 0xabc000+i) }

func apRequest(machine string, expires time.Time) Request {
	return Request{
		Command:       Isolate,
		MachineID:     machine,
		HostName:      "ws-0042.corp.example",
		IsolationType: "Full",
		Comment:       "ransomware <script> & beacon",
		Requester:     "U0REQ",
		Channel:       "C0SOC",
		ExpiresAt:     expires,
	}
}

// apStatePath is how a fresh pending request reaches each state.
var apStatePath = map[State][]State{
	Pending:   {},
	Approved:  {Approved},
	Denied:    {Denied},
	Expired:   {Expired},
	Cancelled: {Cancelled},
	Executing: {Approved, Executing},
	Done:      {Approved, Executing, Done},
	Failed:    {Approved, Executing, Failed},
}

var apStates = []State{Pending, Approved, Denied, Expired, Cancelled, Executing, Done, Failed}

// runApprovalsContract is the one suite every backend must pass.
func runApprovalsContract(t *testing.T, newApprovals func(t testing.TB, cfg ApprovalsConfig) approvalsUnderTest) {
	ctx := context.Background()
	setup := func(t *testing.T, cfg ApprovalsConfig) (approvalsUnderTest, *apClock) {
		t.Helper()
		clk := newAPClock()
		cfg.Now = clk.Now
		cfg.Prefix = testPrefix(t)
		return newApprovals(t, cfg), clk
	}
	// reach moves a new pending request on machine to state s.
	reach := func(t *testing.T, a approvalsAPI, machine string, exp time.Time, s State) Request {
		t.Helper()
		r, err := a.Create(ctx, apRequest(machine, exp))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		from := Pending
		for _, to := range apStatePath[s] {
			if r, err = a.Transition(ctx, r.ID, from, Change{To: to, By: "U0MGR"}); err != nil {
				t.Fatalf("Transition %s → %s: %v", from, to, err)
			}
			from = to
		}
		return r
	}

	t.Run("CreateGetForMachine", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		now := clk.Now()
		exp := now.Add(15 * time.Minute)
		in := apRequest(apMachine(1), exp)
		in.State, in.Version, in.DecidedBy = Done, 7, "ignored" // Create assigns these
		got, err := a.Create(ctx, in)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		want := apRequest(apMachine(1), normTime(exp))
		want.ID, want.State, want.Version = "r-1", Pending, 1
		want.CreatedAt, want.UpdatedAt, want.CheckAt = normTime(now), normTime(now), normTime(exp)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Create returned\n%+v\nwant\n%+v", got, want)
		}
		for name, get := range map[string]func() (Request, error){
			"Get":        func() (Request, error) { return a.Get(ctx, "r-1") },
			"ForMachine": func() (Request, error) { return a.ForMachine(ctx, apMachine(1)) },
		} {
			r, err := get()
			if err != nil || !reflect.DeepEqual(r, want) {
				t.Errorf("%s = %+v, %v; want %+v", name, r, err, want)
			}
		}
		r2, err := a.Create(ctx, apRequest(apMachine(2), exp))
		if err != nil || r2.ID != "r-2" {
			t.Errorf("second Create = %q, %v; want r-2", r2.ID, err)
		}
		if _, err := a.Get(ctx, "r-99"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
		}
		if _, err := a.ForMachine(ctx, apMachine(3)); !errors.Is(err, ErrNotFound) {
			t.Errorf("ForMachine(unknown) error = %v, want ErrNotFound", err)
		}
		if _, err := a.Transition(ctx, "r-99", Pending, Change{To: Approved}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Transition(unknown) error = %v, want ErrNotFound", err)
		}
		if _, err := a.Create(ctx, apRequest(apMachine(4), time.Time{})); err == nil {
			t.Error("Create without ExpiresAt succeeded")
		}
		if _, err := a.Create(ctx, apRequest("", exp)); err == nil {
			t.Error("Create without MachineID succeeded")
		}
		if err := a.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})

	t.Run("OneOpenRequestPerMachine", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		exp := clk.Now().Add(time.Hour)
		m := apMachine(1)
		for _, open := range []State{Pending, Approved, Executing} {
			t.Run(string(open), func(t *testing.T) {
				// Close whatever the previous case left open.
				if prev, err := a.ForMachine(ctx, m); err == nil && !prev.State.Terminal() {
					to := map[State]State{Pending: Cancelled, Approved: Executing, Executing: Failed}[prev.State]
					for !prev.State.Terminal() {
						if prev, err = a.Transition(ctx, prev.ID, prev.State, Change{To: to}); err != nil {
							t.Fatal(err)
						}
						to = Failed
					}
				}
				first := reach(t, a, m, exp, open)
				_, err := a.Create(ctx, apRequest(m, exp))
				var pe *PendingError
				if !errors.As(err, &pe) {
					t.Fatalf("duplicate Create error = %v, want *PendingError", err)
				}
				if !reflect.DeepEqual(pe.Existing, first) {
					t.Errorf("PendingError.Existing = %+v, want %+v", pe.Existing, first)
				}
				if got, _ := a.ForMachine(ctx, m); got.ID != first.ID {
					t.Errorf("ForMachine = %s, want the open %s", got.ID, first.ID)
				}
			})
		}
		// Once terminal, a new request is allowed and becomes the machine's.
		cur, _ := a.ForMachine(ctx, m)
		if _, err := a.Transition(ctx, cur.ID, Executing, Change{To: Done}); err != nil {
			t.Fatal(err)
		}
		next, err := a.Create(ctx, apRequest(m, exp))
		if err != nil {
			t.Fatalf("Create after done: %v", err)
		}
		if got, _ := a.ForMachine(ctx, m); got.ID != next.ID {
			t.Errorf("ForMachine = %s, want latest %s", got.ID, next.ID)
		}
		// A pending request past ExpiresAt still blocks until expired.
		clk.Advance(2 * time.Hour)
		var pe *PendingError
		if _, err := a.Create(ctx, apRequest(m, clk.Now().Add(time.Hour))); !errors.As(err, &pe) {
			t.Fatalf("Create over an unexpired-but-late pending request: %v, want *PendingError", err)
		}
		if _, err := a.Transition(ctx, next.ID, Pending, Change{To: Expired, By: "system"}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Create(ctx, apRequest(m, clk.Now().Add(time.Hour))); err != nil {
			t.Errorf("Create after expiry: %v", err)
		}
	})

	t.Run("ConcurrentCreateOneWins", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		b := a.replica(t)
		const n = 10
		start := make(chan struct{})
		got := make([]Request, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i], errs[i] = []approvalsAPI{a, b}[i%2].Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Hour)))
			}()
		}
		close(start)
		wg.Wait()
		winner, err := a.ForMachine(ctx, apMachine(1))
		if err != nil {
			t.Fatal(err)
		}
		wins := 0
		for i, err := range errs {
			var pe *PendingError
			switch {
			case err == nil:
				wins++
				if got[i].ID != winner.ID {
					t.Errorf("Create %d returned %s, machine points to %s", i, got[i].ID, winner.ID)
				}
			case errors.As(err, &pe):
				if pe.Existing.ID != winner.ID {
					t.Errorf("Create %d refused naming %s, winner %s", i, pe.Existing.ID, winner.ID)
				}
			default:
				t.Errorf("Create %d: %v", i, err)
			}
		}
		if wins != 1 {
			t.Errorf("%d concurrent Creates succeeded for one machine, want 1", wins)
		}
		if n, _ := a.Pending(ctx); n != 1 {
			t.Errorf("Pending = %d, want 1", n)
		}
	})

	t.Run("TransitionTable", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		exp := clk.Now().Add(time.Hour)
		i := 0
		for _, from := range apStates {
			for _, to := range apStates {
				i++
				t.Run(fmt.Sprintf("%s→%s", from, to), func(t *testing.T) {
					before := reach(t, a, apMachine(i), exp, from)
					clk.Advance(time.Second)
					got, err := a.Transition(ctx, before.ID, from, Change{To: to, By: "U0BOSS"})
					if !Allowed(from, to) {
						var ce *ConflictError
						if !errors.As(err, &ce) {
							t.Fatalf("forbidden transition: error %v, want *ConflictError", err)
						}
						if !reflect.DeepEqual(ce.Current, before) || ce.Want != to {
							t.Errorf("conflict = {%+v, %s}, want the unchanged record and %s", ce.Current, ce.Want, to)
						}
						if after, _ := a.Get(ctx, before.ID); !reflect.DeepEqual(after, before) {
							t.Errorf("forbidden transition changed the record to %+v", after)
						}
						return
					}
					if err != nil {
						t.Fatalf("allowed transition: %v", err)
					}
					want := before
					want.State, want.Version, want.UpdatedAt = to, before.Version+1, normTime(clk.Now())
					if from == Pending && to != Pending {
						want.DecidedBy, want.DecidedAt = "U0BOSS", normTime(clk.Now())
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("got\n%+v\nwant\n%+v", got, want)
					}
					if stored, _ := a.Get(ctx, before.ID); !reflect.DeepEqual(stored, got) {
						t.Errorf("stored %+v, returned %+v", stored, got)
					}
				})
			}
		}
		// A stale `from` loses even if the move would be legal from it.
		r := reach(t, a, apMachine(1000), exp, Pending)
		var ce *ConflictError
		if _, err := a.Transition(ctx, r.ID, Approved, Change{To: Executing}); !errors.As(err, &ce) || ce.Current.State != Pending {
			t.Errorf("Transition with stale from: %v, want conflict showing pending", err)
		}
	})

	t.Run("ChangeFields", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		exp := clk.Now().Add(time.Hour)
		r, err := a.Create(ctx, apRequest(apMachine(1), exp))
		if err != nil {
			t.Fatal(err)
		}
		// The card is posted after Create: record where.
		r, err = a.Transition(ctx, r.ID, Pending, Change{To: Pending, MessageTS: "1700000000.000100", Channel: "C0OTHER"})
		if err != nil || r.MessageTS != "1700000000.000100" || r.Channel != "C0OTHER" || r.DecidedBy != "" || r.Version != 2 {
			t.Fatalf("pending update = %+v, %v", r, err)
		}
		decided := clk.Now().Add(-time.Second)
		clk.Advance(time.Minute)
		runAt := clk.Now().Add(30 * time.Second)
		r, err = a.Transition(ctx, r.ID, Pending, Change{To: Approved, By: "U0MGR", At: decided, RunAt: runAt, CheckAt: runAt, Note: "queued"})
		if err != nil {
			t.Fatal(err)
		}
		if r.DecidedBy != "U0MGR" || !r.DecidedAt.Equal(normTime(decided)) || !r.UpdatedAt.Equal(normTime(clk.Now())) ||
			!r.RunAt.Equal(normTime(runAt)) || !r.CheckAt.Equal(normTime(runAt)) || r.Note != "queued" || r.MessageTS != "1700000000.000100" {
			t.Fatalf("approve = %+v", r)
		}
		r, err = a.Transition(ctx, r.ID, Approved, Change{To: Executing, By: "system", MachineActionID: "act-1", CheckAt: runAt.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		// Zero fields leave values; leaving a non-pending state keeps DecidedBy.
		if r.DecidedBy != "U0MGR" || r.MachineActionID != "act-1" || r.Note != "queued" || !r.RunAt.Equal(normTime(runAt)) {
			t.Fatalf("execute = %+v", r)
		}
		r, err = a.Transition(ctx, r.ID, Executing, Change{To: Done, Note: "Succeeded"})
		if err != nil || r.Note != "Succeeded" || r.MachineActionID != "act-1" || r.Version != 5 {
			t.Fatalf("done = %+v, %v", r, err)
		}
	})

	t.Run("ConcurrentApproveOneWins", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		b := a.replica(t)
		r, err := a.Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		const clicks = 10
		start := make(chan struct{})
		errs := make([]error, clicks)
		var wg sync.WaitGroup
		for i := range clicks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := []approvalsAPI{a, b}[i%2]
				<-start
				_, errs[i] = s.Transition(ctx, r.ID, Pending, Change{To: Approved, By: fmt.Sprintf("U%d", i)})
			}()
		}
		close(start)
		wg.Wait()
		final, err := a.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		wins := 0
		for i, err := range errs {
			var ce *ConflictError
			switch {
			case err == nil:
				wins++
				if final.DecidedBy != fmt.Sprintf("U%d", i) {
					t.Errorf("winner U%d but record decided by %s", i, final.DecidedBy)
				}
			case errors.As(err, &ce):
				if ce.Current.State != Approved || ce.Current.DecidedBy != final.DecidedBy {
					t.Errorf("loser U%d told %s by %s, want approved by %s", i, ce.Current.State, ce.Current.DecidedBy, final.DecidedBy)
				}
			default:
				t.Errorf("click U%d: %v", i, err)
			}
		}
		if wins != 1 || final.State != Approved || final.Version != 2 {
			t.Errorf("%d winners, final %s v%d; want exactly 1, approved v2", wins, final.State, final.Version)
		}
	})

	t.Run("ApproveDenyExpireRace", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		b := a.replica(t)
		type move struct {
			s  approvalsAPI
			to State
			by string
		}
		moves := []move{{a, Approved, "U0A"}, {b, Denied, "U0B"}, {b, Expired, "system"}, {a, Cancelled, "U0REQ"}}
		winsBy := map[State]int{}
		for iter := range 200 {
			// A machine per iteration: an approved request stays open.
			r, err := a.Create(ctx, apRequest(apMachine(iter), clk.Now().Add(time.Hour)))
			if err != nil {
				t.Fatalf("iteration %d: Create: %v", iter, err)
			}
			start := make(chan struct{})
			errs := make([]error, len(moves))
			var wg sync.WaitGroup
			for i, mv := range moves {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, errs[i] = mv.s.Transition(ctx, r.ID, Pending, Change{To: mv.to, By: mv.by})
				}()
			}
			close(start)
			wg.Wait()
			final, err := a.Get(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			wins := 0
			for i, err := range errs {
				var ce *ConflictError
				switch {
				case err == nil:
					wins++
					if final.State != moves[i].to || final.DecidedBy != moves[i].by {
						t.Fatalf("iteration %d: %s won but record is %s by %s", iter, moves[i].to, final.State, final.DecidedBy)
					}
				case errors.As(err, &ce):
					if !reflect.DeepEqual(ce.Current, final) {
						t.Fatalf("iteration %d: loser saw %+v, final %+v", iter, ce.Current, final)
					}
				default:
					t.Fatalf("iteration %d: %v", iter, err)
				}
			}
			if wins != 1 || final.Version != 2 {
				t.Fatalf("iteration %d: %d winners, version %d; want exactly one transition", iter, wins, final.Version)
			}
			winsBy[final.State]++
		}
		t.Logf("winners over 200 races: %v", winsBy)
	})

	t.Run("IfVersionTakeoverOnce", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		b := a.replica(t)
		r := reach(t, a, apMachine(1), clk.Now().Add(time.Hour), Executing)
		stranded := r.Version
		const schedulers = 8
		start := make(chan struct{})
		errs := make([]error, schedulers)
		var wg sync.WaitGroup
		for i := range schedulers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = []approvalsAPI{a, b}[i%2].Transition(ctx, r.ID, Executing, Change{
					To: Executing, IfVersion: stranded, Note: fmt.Sprintf("taken over by %d", i), CheckAt: clk.Now().Add(time.Minute),
				})
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			var ce *ConflictError
			if err == nil {
				wins++
			} else if !errors.As(err, &ce) || ce.Current.Version != stranded+1 {
				t.Errorf("takeover loser: %v, want conflict at version %d", err, stranded+1)
			}
		}
		final, _ := a.Get(ctx, r.ID)
		if wins != 1 || final.Version != stranded+1 || !strings.HasPrefix(final.Note, "taken over by ") {
			t.Errorf("%d takeovers, final %+v; want exactly one", wins, final)
		}
		if _, err := a.Transition(ctx, r.ID, Executing, Change{To: Done, IfVersion: stranded}); err == nil {
			t.Error("transition with a stale IfVersion succeeded")
		}
		if _, err := a.Transition(ctx, r.ID, Executing, Change{To: Done, IfVersion: final.Version}); err != nil {
			t.Errorf("transition with the current IfVersion: %v", err)
		}
	})

	t.Run("PendingPastExpiresAt", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		exp := clk.Now().Add(10 * time.Minute)
		cases := []struct {
			to      State
			expired bool // the call fails and the request becomes expired
		}{
			{Approved, true}, {Denied, true}, {Pending, true}, {Executing, true},
			{Expired, false}, {Cancelled, false},
		}
		ids := make([]string, len(cases))
		for i := range cases {
			r, err := a.Create(ctx, apRequest(apMachine(i), exp))
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = r.ID
		}
		// Just before ExpiresAt a decision still counts.
		clk.Advance(10*time.Minute - time.Microsecond)
		early, err := a.Create(ctx, apRequest(apMachine(100), exp))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Transition(ctx, early.ID, Pending, Change{To: Approved, By: "U0MGR"}); err != nil {
			t.Fatalf("approve 1µs before expiry: %v", err)
		}
		clk.Advance(time.Microsecond)
		for i, c := range cases {
			id := ids[i]
			got, err := a.Transition(ctx, id, Pending, Change{To: c.to, By: "U0MGR"})
			if !c.expired {
				if err != nil || got.State != c.to {
					t.Errorf("%s past expiry: %+v, %v; want it done", c.to, got, err)
				}
				continue
			}
			var ce *ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("%s past expiry: %v, want *ConflictError", c.to, err)
			}
			cur := ce.Current
			if cur.State != Expired || cur.DecidedBy != "system" || !cur.DecidedAt.Equal(normTime(clk.Now())) || cur.Version != 2 || ce.Want != c.to {
				t.Errorf("%s past expiry: conflict %+v (want %s), want expired by system now at v2", c.to, cur, ce.Want)
			}
			if stored, _ := a.Get(ctx, id); !reflect.DeepEqual(stored, cur) {
				t.Errorf("stored %+v, conflict reported %+v", stored, cur)
			}
		}
		if due, err := a.Due(ctx, 100); err != nil || len(due) != 1 || due[0].ID != early.ID {
			t.Errorf("Due = %v, %v; want only the approved %s", apIDs(due), err, early.ID)
		}
		if n, err := a.Pending(ctx); err != nil || n != 0 {
			t.Errorf("Pending = %d, %v; want 0", n, err)
		}
	})

	t.Run("DueOrderAndPendingCount", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		t0 := clk.Now()
		// ids r-1..r-6, ExpiresAt (= CheckAt) in seconds from t0
		offsets := []time.Duration{300, 60, 240, 120, 180, 150}
		for i, off := range offsets {
			if _, err := a.Create(ctx, apRequest(apMachine(i), t0.Add(off*time.Second))); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := a.Pending(ctx); err != nil || n != 6 {
			t.Errorf("Pending = %d, %v; want 6", n, err)
		}
		check := func(limit int, want ...string) {
			t.Helper()
			due, err := a.Due(ctx, limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := apIDs(due); !reflect.DeepEqual(got, want) {
				t.Errorf("Due(%d) at +%v = %v, want %v", limit, clk.Now().Sub(t0), got, want)
			}
		}
		check(10)
		// Approved with a later CheckAt: due then; terminal: never.
		if _, err := a.Transition(ctx, "r-2", Pending, Change{To: Approved, CheckAt: t0.Add(600 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Transition(ctx, "r-4", Pending, Change{To: Denied}); err != nil {
			t.Fatal(err)
		}
		if n, _ := a.Pending(ctx); n != 4 {
			t.Errorf("Pending = %d, want 4", n)
		}
		clk.Advance(240 * time.Second) // CheckAt ≤ now is due
		check(10, "r-6", "r-5", "r-3")
		check(2, "r-6", "r-5")
		check(0)
		clk.Advance(20 * time.Minute)
		check(10, "r-6", "r-5", "r-3", "r-1", "r-2")
	})

	t.Run("FirstDelivery", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		b := a.replica(t)
		const ttl = 300 * time.Millisecond
		for i, c := range []struct {
			s    approvalsAPI
			key  string
			want bool
		}{{a, "Ev1", true}, {a, "Ev1", false}, {b, "Ev1", false}, {b, "Ev2", true}, {a, "Ev2", false}} {
			if got, err := c.s.FirstDelivery(ctx, c.key, ttl); err != nil || got != c.want {
				t.Errorf("step %d: FirstDelivery(%s) = %v, %v; want %v", i, c.key, got, err, c.want)
			}
		}
		if _, err := a.FirstDelivery(ctx, "Ev3", 0); err == nil {
			t.Error("FirstDelivery with ttl 0 succeeded")
		}
		// Concurrent redeliveries: exactly one first.
		var firsts atomic.Int32
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ok, err := []approvalsAPI{a, b}[i%2].FirstDelivery(ctx, "Ev4", time.Minute); err == nil && ok {
					firsts.Add(1)
				}
			}()
		}
		wg.Wait()
		if firsts.Load() != 1 {
			t.Errorf("%d first deliveries of Ev4, want 1", firsts.Load())
		}
		clk.Advance(ttl)
		apEventually(t, "Ev1 is forgotten after its ttl", func() bool {
			ok, err := a.FirstDelivery(ctx, "Ev1", ttl)
			return err == nil && ok
		})
	})

	t.Run("AuditHistory", func(t *testing.T) {
		a, clk := setup(t, ApprovalsConfig{})
		b := a.replica(t)
		at := clk.Now()
		events := []Event{
			{RequestID: "r-1", Type: EventCreated, Actor: "U0REQ", MachineID: apMachine(1), Time: at},
			{RequestID: "r-2", Type: EventCreated, Actor: "U0REQ", MachineID: apMachine(2)},
			{RequestID: "r-1", Type: EventApproved, Actor: "U0MGR", MachineID: apMachine(1), Reason: "ok <b>&</b>"},
			{Type: EventRefused, Actor: "U0X", Reason: "not allowed"},
			{RequestID: "r-1", Type: EventMDECall, Actor: "system", MachineID: apMachine(1), Operation: "isolate",
				StatusCode: 201, ActionID: "act-1", CorrelationID: "corr-9", Time: at.Add(time.Nanosecond)},
			{RequestID: "r-1", Type: EventDone, Actor: "system", Reason: "Succeeded"},
		}
		for i, e := range events {
			clk.Advance(time.Millisecond)
			if err := []approvalsAPI{a, b}[i%2].Append(ctx, e); err != nil {
				t.Fatalf("Append %d: %v", i, err)
			}
			if events[i].Time.IsZero() {
				events[i].Time = clk.Now() // the store's clock fills it in
			}
		}
		got, err := b.History(ctx, "r-1")
		if err != nil {
			t.Fatal(err)
		}
		want := []Event{events[0], events[2], events[4], events[5]}
		if len(got) != len(want) {
			t.Fatalf("History(r-1) has %d events, want %d: %+v", len(got), len(want), got)
		}
		prev := ""
		for i := range want {
			if got[i].ID == "" || (prev != "" && !apIDLess(prev, got[i].ID)) {
				t.Errorf("event %d id %q does not follow %q", i, got[i].ID, prev)
			}
			prev = got[i].ID
			w := want[i]
			w.ID, w.Time = got[i].ID, w.Time.UTC()
			if !reflect.DeepEqual(got[i], w) {
				t.Errorf("event %d = %+v, want %+v", i, got[i], w)
			}
		}
		if h, err := a.History(ctx, "r-2"); err != nil || len(h) != 1 || h[0].Type != EventCreated {
			t.Errorf("History(r-2) = %+v, %v", h, err)
		}
		if h, err := a.History(ctx, "r-404"); err != nil || len(h) != 0 {
			t.Errorf("History(unknown) = %+v, %v; want empty", h, err)
		}
		if n := a.auditLen(t); n != int64(len(events)) {
			t.Errorf("global audit length %d, want %d", n, len(events))
		}
		if err := a.Append(ctx, Event{RequestID: "r-1"}); err == nil {
			t.Error("Append without a type succeeded")
		}
	})

	t.Run("AuditTrimming", func(t *testing.T) {
		// Trimming is approximate in Redis: whole stream nodes of up to 100
		// (stream-node-max-entries) entries go at once.
		const maxLen, node = 10, 100
		a, _ := setup(t, ApprovalsConfig{AuditMaxLen: maxLen, AuditMaxAge: time.Hour})
		for i := range 500 {
			if err := a.Append(ctx, Event{RequestID: "r-1", Type: EventStatus, Reason: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if n := a.auditLen(t); n < maxLen || n > maxLen+node {
			t.Errorf("after 500 appends with MAXLEN ~%d the stream holds %d", maxLen, n)
		}
		// The request's own stream is not trimmed by the global limit.
		if h, err := a.History(ctx, "r-1"); err != nil || len(h) != 500 || h[0].Reason != "0" || h[499].Reason != "499" {
			t.Errorf("History(r-1): %d events, %v; want all 500 in order", len(h), err)
		}

		const maxAge = 300 * time.Millisecond
		b, bclk := setup(t, ApprovalsConfig{AuditMaxAge: maxAge})
		for range 150 {
			if err := b.Append(ctx, Event{Type: EventRefused}); err != nil {
				t.Fatal(err)
			}
		}
		bclk.Advance(maxAge + time.Millisecond)
		apEventually(t, "entries older than AuditMaxAge are trimmed", func() bool {
			if err := b.Append(ctx, Event{Type: EventRefused}); err != nil {
				t.Fatal(err)
			}
			return b.auditLen(t) < node
		})
	})

	t.Run("RetentionExpiresRecords", func(t *testing.T) {
		const retention = 400 * time.Millisecond
		a, clk := setup(t, ApprovalsConfig{Retention: retention})
		r, err := a.Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Append(ctx, Event{RequestID: r.ID, Type: EventCreated}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(retention)
		apEventually(t, "the record passes Retention", func() bool {
			_, err := a.Get(ctx, r.ID)
			return errors.Is(err, ErrNotFound)
		})
		apEventually(t, "the machine index and history pass Retention", func() bool {
			_, err := a.ForMachine(ctx, apMachine(1))
			h, herr := a.History(ctx, r.ID)
			return errors.Is(err, ErrNotFound) && herr == nil && len(h) == 0
		})
		if due, err := a.Due(ctx, 10); err != nil || len(due) != 0 {
			t.Errorf("Due after retention = %v, %v; want none", apIDs(due), err)
		}
		if _, err := a.Transition(ctx, r.ID, Pending, Change{To: Cancelled}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Transition after retention: %v, want ErrNotFound", err)
		}
		// The machine is free again.
		if _, err := a.Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Hour))); err != nil {
			t.Errorf("Create after retention: %v", err)
		}
	})
}

func apIDs(rs []Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// apIDLess compares stream entry ids "<ms>-<seq>".
func apIDLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if len(am) != len(bm) {
		return len(am) < len(bm)
	}
	if am != bm {
		return am < bm
	}
	if len(as) != len(bs) {
		return len(as) < len(bs)
	}
	return as < bs
}
