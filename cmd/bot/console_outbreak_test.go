package main

import (
	"strings"
	"testing"
)

// TestConsoleOutbreak: a list in the console makes one card and one list
// reply, and once approved its batch is drained and followed to the one
// summary before the console exits (the console drains the batches it
// started, never another process's).
func TestConsoleOutbreak(t *testing.T) {
	inTempDir(t)
	script := strings.Join([]string{
		"/isolate web-01.contoso.local, db-01.contoso.local, nosuch.contoso.local full worm spreading",
		"as bob",
		"approve r-1",
	}, "\n") + "\n"
	out, stderr, err := runConsoleScript(t, nil, script)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
	}
	steps := []string{
		"┌ r-1: isolate (Full) 2 machines, requested by @alice",
		"│ machines: 2, listed in the thread (web-01.contoso.local, db-01.contoso.local…)",
		"3. nosuch.contoso.local — left out: no machine has this name",
		"bob> approve r-1",
		"Batch b-1 finished: 2 isolated · 0 failed · 1 skipped",
		"isolated (2): web-01.contoso.local, db-01.contoso.local",
		"│ progress: finished · 2/2 sent · 2 isolated · 0 failed · 1 skipped",
	}
	inOrder(t, out, steps)
	if strings.Contains(out, "stopped waiting for running work") {
		t.Errorf("the console gave up waiting for the batch:\n%s", out)
	}
}
