package fakemde

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/soc/isolate-bot/defender"
)

// maxTop is MDE's largest $top and default page size.
const maxTop = 10000

// skipParam carries the fake's paging offset in an @odata.nextLink; like
// MDE's own token it is opaque to the client.
const skipParam = "$skiptoken"

// SetPageSize makes list answers (GET /api/machines and
// /api/machineactions with $filter) hold at most n entries, the rest
// reached through @odata.nextLink; n <= 0 restores MDE's 10,000.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

var (
	machineFields = map[string]bool{"id": true, "computerDnsName": true, "osPlatform": true,
		"healthStatus": true, "onboardingStatus": true, "machineTags": true}
	actionFields = map[string]bool{"id": true, "machineId": true, "type": true, "status": true,
		"requestor": true, "computerDnsName": true, "creationDateTimeUtc": true}
)

func odataError(msg string) error {
	return &defender.APIError{Status: 400, Code: "ODataError", Message: msg, Kind: defender.ErrBadRequest}
}

// list answers a collection read: $filter (the subset parseFilter knows),
// $top (at most 10,000) and paging by the page size.
func (s *Server) list(r *http.Request, op string) (int, any, error) {
	q := r.URL.Query()
	fields := machineFields
	if op == OpActions {
		fields = actionFields
	}
	match := func(record) bool { return true }
	if f := q.Get("$filter"); f != "" {
		p, err := parseFilter(f, fields)
		if err != nil {
			return 0, nil, odataError("Invalid filter clause: " + err.Error())
		}
		match = p
	}
	top, skip := maxTop, 0
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxTop {
			return 0, nil, odataError("$top must be a number from 0 to 10000")
		}
		top = n
	}
	if v := q.Get(skipParam); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, nil, odataError("invalid " + skipParam)
		}
		skip = n
	}
	var all []any
	if op == OpActions {
		for _, a := range s.Sim.Actions() { // newest first
			if match(record{fields: map[string]string{"id": a.ID, "machineId": a.MachineID, "type": a.Type,
				"status": a.Status, "requestor": a.Requestor, "computerDnsName": a.ComputerDNSName},
				times: map[string]time.Time{"creationDateTimeUtc": a.CreationDateTimeUTC}}) {
				all = append(all, a)
			}
		}
	} else {
		for _, m := range s.Sim.Machines() {
			if match(record{tags: m.MachineTags, fields: map[string]string{"id": m.ID, "computerDnsName": m.ComputerDNSName,
				"osPlatform": m.OSPlatform, "healthStatus": m.HealthStatus, "onboardingStatus": m.OnboardingStatus}}) {
				all = append(all, m)
			}
		}
	}
	all = all[:min(len(all), top)]
	s.mu.Lock()
	size := s.pageSize
	s.mu.Unlock()
	if size <= 0 {
		size = maxTop
	}
	end := min(len(all), skip+size)
	out := map[string]any{"@odata.context": s.srv.URL + "/api/$metadata#" + map[string]string{OpActions: "MachineActions", OpMachines: "Machines"}[op],
		"value": nonNil(all[min(skip, len(all)):end])}
	if end < len(all) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set(skipParam, strconv.Itoa(end))
		out["@odata.nextLink"] = s.srv.URL + r.URL.Path + "?" + next.Encode()
	}
	return http.StatusOK, out, nil
}
