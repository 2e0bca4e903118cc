package store

import (
	"reflect"
	"testing"
	"time"
)

// toMap turns HSET/XADD field-value pairs into what HGETALL/XRANGE return.
func toMap(pairs []any) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1].(string)
	}
	return m
}

// FuzzRequestCodec: any request survives encode → decode, at microsecond
// precision; decoding arbitrary stored values never panics.
func FuzzRequestCodec(f *testing.F) {
	f.Add("ws-1", "isolate <now> & \"later\"", "U1", int64(1732851234123456), int64(3), uint8(0), "1")
	f.Add("", "", "", int64(0), int64(1), uint8(7), "")
	f.Add("h", "é\x00\xff", "system", int64(-1), int64(1<<62), uint8(3), "1.5e9")
	f.Fuzz(func(t *testing.T, host, comment, by string, us, version int64, state uint8, raw string) {
		ts := time.Time{}
		if us != 0 {
			ts = time.UnixMicro(us)
		}
		in := Request{
			ID: "r-1", Command: Isolate, MachineID: "m", HostName: host, Comment: comment,
			State: apStates[int(state)%len(apStates)], DecidedBy: by, DecidedAt: ts, CreatedAt: ts,
			ExpiresAt: ts.Add(time.Minute), RunAt: ts, CheckAt: ts, Note: comment, Version: version,
			Needs: 2 * int(state%2), Protected: host, ApprovedBy: []string{"U1", "W2"}[:int(state%3)],
		}
		if len(in.ApprovedBy) == 0 {
			in.ApprovedBy = nil // not stored: decodes as nil
		}
		out, err := decodeRequest("r-1", toMap(encodeRequest(in)))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", in, err)
		}
		want := normRequest(in)
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("round trip\n%+v\nwant\n%+v", out, want)
		}
		// Garbage in any field is an error or a value, never a panic.
		for _, f := range []string{fVersion, fCreatedAt, fState} {
			m := toMap(encodeRequest(in))
			m[f] = raw
			_, _ = decodeRequest("r-1", m)
		}
	})
}

// FuzzEventCodec: any event survives the audit stream's field encoding.
func FuzzEventCodec(f *testing.F) {
	f.Add("r-1", "mde_call", "U1", "isolate", 201, "act", "corr", "why <b>", int64(1732851234123456789), "x")
	f.Add("", "refused", "", "", 0, "", "", "", int64(0), "2026-13-01")
	f.Fuzz(func(t *testing.T, req, typ, actor, op string, status int, action, corr, reason string, ns int64, raw string) {
		in := Event{
			ID: "1-0", Time: time.Unix(0, ns).UTC(), RequestID: req, Type: typ, Actor: actor, Operation: op,
			StatusCode: status, ActionID: action, CorrelationID: corr, Reason: reason,
		}
		m := map[string]any{}
		for k, v := range toMap(eventFields(in)) {
			m[k] = v
		}
		out, err := parseEvent("1-0", m)
		if err != nil {
			t.Fatalf("parse(fields(%+v)): %v", in, err)
		}
		if !reflect.DeepEqual(out, in) {
			t.Fatalf("round trip\n%+v\nwant\n%+v", out, in)
		}
		m[aTime], m[aStatus] = raw, raw
		_, _ = parseEvent("1-0", m)
	})
}
