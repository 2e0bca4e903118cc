package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hash field names of a request record. Short names keep a pending record
// small (see README.md, "Record fields"); empty fields are not stored.
// Times are Unix microseconds (exact in Lua's doubles, unlike nanoseconds).
// The id is the key, not a field.
const (
	fCommand   = "c"
	fMachine   = "m"
	fHost      = "h"
	fIsolation = "it"
	fComment   = "cm"
	fRequester = "rq"
	fChannel   = "ch"
	fMessageTS = "ts"
	fState     = "s"
	fDecidedBy = "db"
	fDecidedAt = "da"
	fCreatedAt = "ca"
	fExpiresAt = "ea"
	fUpdatedAt = "ua"
	fRunAt     = "ra"
	fCheckAt   = "ka"
	fActionID  = "ma"
	fNote      = "n"
	fVersion   = "v"
	fNeeds     = "nd" // approvers needed (absent: one)
	fProtected = "pr" // why the machine is protected
	fApproved  = "ap" // distinct approvers so far, comma-separated (Slack ids hold no comma)
)

// normTime is the precision and zone records are stored with, so a record
// read back equals the one written, in Redis and in memory alike.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

func normRequest(r Request) Request {
	r.DecidedAt = normTime(r.DecidedAt)
	r.CreatedAt = normTime(r.CreatedAt)
	r.ExpiresAt = normTime(r.ExpiresAt)
	r.UpdatedAt = normTime(r.UpdatedAt)
	r.RunAt = normTime(r.RunAt)
	r.CheckAt = normTime(r.CheckAt)
	return r
}

// micros encodes a time for Redis; "" for the zero time (field not set).
func micros(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

// encodeRequest returns HSET field/value pairs for the non-empty fields.
func encodeRequest(r Request) []any {
	out := make([]any, 0, 44)
	add := func(f, v string) {
		if v != "" {
			out = append(out, f, v)
		}
	}
	add(fCommand, string(r.Command))
	add(fMachine, r.MachineID)
	add(fHost, r.HostName)
	add(fIsolation, r.IsolationType)
	add(fComment, r.Comment)
	add(fRequester, r.Requester)
	add(fChannel, r.Channel)
	add(fMessageTS, r.MessageTS)
	add(fState, string(r.State))
	add(fDecidedBy, r.DecidedBy)
	add(fDecidedAt, micros(r.DecidedAt))
	add(fCreatedAt, micros(r.CreatedAt))
	add(fExpiresAt, micros(r.ExpiresAt))
	add(fUpdatedAt, micros(r.UpdatedAt))
	add(fRunAt, micros(r.RunAt))
	add(fCheckAt, micros(r.CheckAt))
	add(fActionID, r.MachineActionID)
	add(fNote, r.Note)
	add(fVersion, strconv.FormatInt(r.Version, 10))
	if r.Needs > 1 {
		add(fNeeds, strconv.Itoa(r.Needs))
	}
	add(fProtected, r.Protected)
	add(fApproved, strings.Join(r.ApprovedBy, ","))
	return out
}

// decodeRequest is the inverse of encodeRequest. A record without state or
// version is corrupt: an error, never a zero-value request acted upon.
func decodeRequest(id string, m map[string]string) (Request, error) {
	r := Request{
		ID:              id,
		Command:         Command(m[fCommand]),
		MachineID:       m[fMachine],
		HostName:        m[fHost],
		IsolationType:   m[fIsolation],
		Comment:         m[fComment],
		Requester:       m[fRequester],
		Channel:         m[fChannel],
		MessageTS:       m[fMessageTS],
		State:           State(m[fState]),
		DecidedBy:       m[fDecidedBy],
		MachineActionID: m[fActionID],
		Note:            m[fNote],
		Protected:       m[fProtected],
	}
	if v := m[fApproved]; v != "" {
		r.ApprovedBy = strings.Split(v, ",")
	}
	if r.State == "" {
		return Request{}, fmt.Errorf("request %s: stored record has no state", id)
	}
	var err error
	if r.Version, err = strconv.ParseInt(m[fVersion], 10, 64); err != nil {
		return Request{}, fmt.Errorf("request %s: stored version %q: %w", id, m[fVersion], err)
	}
	if v, ok := m[fNeeds]; ok {
		if r.Needs, err = strconv.Atoi(v); err != nil {
			return Request{}, fmt.Errorf("request %s: stored approvers needed %q: %w", id, v, err)
		}
	}
	times := []struct {
		f string
		t *time.Time
	}{
		{fDecidedAt, &r.DecidedAt}, {fCreatedAt, &r.CreatedAt}, {fExpiresAt, &r.ExpiresAt},
		{fUpdatedAt, &r.UpdatedAt}, {fRunAt, &r.RunAt}, {fCheckAt, &r.CheckAt},
	}
	for _, x := range times {
		v, ok := m[x.f]
		if !ok || v == "" {
			continue
		}
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Request{}, fmt.Errorf("request %s: stored time %s=%q: %w", id, x.f, v, err)
		}
		*x.t = time.UnixMicro(us).UTC()
	}
	return r, nil
}
