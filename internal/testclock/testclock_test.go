package testclock

import (
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := New(Start)
	if !c.Now().Equal(Start) {
		t.Fatalf("Now %v, want %v", c.Now(), Start)
	}
	c.Advance(90 * time.Second)
	if want := Start.Add(90 * time.Second); !c.Now().Equal(want) {
		t.Fatalf("after Advance: %v, want %v", c.Now(), want)
	}
	later := Start.Add(24 * time.Hour)
	c.Set(later)
	if !c.Now().Equal(later) {
		t.Fatalf("after Set: %v, want %v", c.Now(), later)
	}
}

// TestConcurrentAdvance: every Advance counts, also when many goroutines
// move the clock while others read it (run with -race).
func TestConcurrentAdvance(t *testing.T) {
	c := New(Start)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(2)
		go func() { defer wg.Done(); c.Advance(time.Second) }()
		go func() { defer wg.Done(); _ = c.Now() }()
	}
	wg.Wait()
	if want := Start.Add(50 * time.Second); !c.Now().Equal(want) {
		t.Fatalf("Now %v, want %v", c.Now(), want)
	}
}
