package mock_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/mock"
	"github.com/soc/isolate-bot/internal/testclock"
)

// TestDefenderOver: every function of the Defender fake is wired to the
// simulator, so a method added to the fake but not to DefenderOver fails
// here rather than as a nil-function panic in some other test.
func TestDefenderOver(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clk := testclock.New(t0)
	sim := defender.NewSimulator(clk.Now)
	d := mock.DefenderOver(sim)
	v := reflect.ValueOf(d).Elem()
	for i := range v.NumField() {
		if v.Field(i).IsNil() {
			t.Errorf("DefenderOver leaves %s nil", v.Type().Field(i).Name)
		}
	}
	ctx := context.Background()
	a, err := d.Isolate(ctx, nil, defender.SimWeb01, defender.Full, "c")
	if err != nil {
		t.Fatal(err)
	}
	acts, err := d.ActionsSince(ctx, "Isolate", t0)
	if err != nil || len(acts) != 1 || acts[0].ID != a.ID {
		t.Fatalf("ActionsSince = %+v, %v; want the simulator's action %s", acts, err, a.ID)
	}
}
