package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// How batches and entries are stored in Redis (see BATCHES.md).

// entryWire is an entry as stored: a JSON object per hash field, which the
// scripts read and write with cjson. Times are µs as strings (cjson would
// round large numbers).
type entryWire struct {
	S string `json:"s"`
	M string `json:"m"`
	H string `json:"h,omitempty"`
	O string `json:"o,omitempty"`
	L string `json:"l,omitempty"`
	A int    `json:"a,omitempty"`
	X string `json:"x,omitempty"`
	R string `json:"r,omitempty"`
	// MS is MDE's last known status of a sent entry's action (RecordResults).
	MS string `json:"ms,omitempty"`
}

func encodeEntry(e BatchEntry) string {
	b, _ := json.Marshal(entryWire{S: string(e.State), M: e.MachineID, H: e.HostName, R: e.Reason, X: e.ActionID, A: e.Attempt, MS: e.Status})
	return string(b)
}

func decodeEntry(id, n, raw string) (BatchEntry, error) {
	var w entryWire
	if err := json.Unmarshal([]byte(raw), &w); err != nil {
		return BatchEntry{}, fmt.Errorf("batch %s entry %s: %w", id, n, err)
	}
	pos, err := strconv.Atoi(n)
	if err != nil || w.S == "" {
		return BatchEntry{}, fmt.Errorf("batch %s: bad entry %q", id, n)
	}
	e := BatchEntry{Batch: id, N: pos, MachineID: w.M, HostName: w.H, State: EntryState(w.S), Owner: w.O,
		Attempt: w.A, ActionID: w.X, Reason: w.R, Status: w.MS}
	if w.L != "" {
		us, err := strconv.ParseInt(w.L, 10, 64)
		if err != nil {
			return BatchEntry{}, fmt.Errorf("batch %s entry %s: lease %q: %w", id, n, w.L, err)
		}
		e.LeaseUntil = time.UnixMicro(us).UTC()
	}
	return e, nil
}

func parseEntries(id string, m map[string]string) ([]BatchEntry, error) {
	out := make([]BatchEntry, len(m))
	for n, raw := range m {
		e, err := decodeEntry(id, n, raw)
		if err != nil {
			return nil, err
		}
		if e.N < 1 || e.N > len(m) {
			return nil, fmt.Errorf("batch %s: entry %d out of range", id, e.N)
		}
		out[e.N-1] = e
	}
	return out, nil
}

// batchFields is the meta hash of a new batch; the counters cs, cf, ck
// (sent, failed, skipped) are incremented by the record script, cv and cu
// (succeeded, unsuccessful at MDE) by the results script.
func batchFields(b Batch) map[string]any {
	return map[string]any{
		"rq": b.RequestID, "c": string(b.Command), "it": b.IsolationType, "cm": b.Comment, "by": b.Requester,
		"ap": strings.Join(b.Approvers, ","), "st": string(b.State), "ca": b.CreatedAt.UnixMicro(),
		"n": b.Counts.Total, "cs": 0, "cf": 0, "ck": b.Counts.Skipped, "cv": 0, "cu": 0,
	}
}

func parseBatch(id string, h map[string]string) (Batch, error) {
	var errs []error
	num := func(f string) int64 {
		if h[f] == "" {
			return 0
		}
		v, err := strconv.ParseInt(h[f], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", f, err))
		}
		return v
	}
	b := Batch{ID: id, RequestID: h["rq"], Command: Command(h["c"]), IsolationType: h["it"], Comment: h["cm"],
		Requester: h["by"], State: BatchState(h["st"]), StoppedBy: h["sb"],
		CreatedAt: time.UnixMicro(num("ca")).UTC(),
		Counts: BatchCounts{Total: int(num("n")), Sent: int(num("cs")), Failed: int(num("cf")), Skipped: int(num("ck")),
			Succeeded: int(num("cv")), Unsuccessful: int(num("cu"))}}
	if h["ap"] != "" {
		b.Approvers = strings.Split(h["ap"], ",")
	}
	if h["sa"] != "" {
		b.StoppedAt = time.UnixMicro(num("sa")).UTC()
	}
	if b.State == "" {
		errs = append(errs, errors.New("no state"))
	}
	if len(errs) > 0 {
		return Batch{}, fmt.Errorf("batch %s: corrupt record: %w", id, errors.Join(errs...))
	}
	return b, nil
}
