package defender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

func badRequest(op, msg string) error {
	return &APIError{Op: op, Kind: ErrBadRequest, Message: msg}
}

// short abbreviates an id for error text.
func short(id string) string {
	return truncate(id, 12)
}

// commentBody and isolateBody are the exact MDE request bodies: MDE body
// parameters are case-sensitive.
type commentBody struct {
	Comment string `json:"Comment"`
}

type isolateBody struct {
	Comment       string        `json:"Comment"`
	IsolationType IsolationType `json:"IsolationType"`
}

func encodeJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep '<' readable in the MDE portal's comment
	_ = enc.Encode(v)        // plain structs of strings cannot fail
	return bytes.TrimRight(b.Bytes(), "\n")
}

func checkComment(op, comment string) error {
	if strings.TrimSpace(comment) == "" {
		return badRequest(op, "a comment is required")
	}
	return nil
}

// Isolate asks MDE to isolate a machine, sending when slot admits it (nil:
// the client's Gate decides). See the package doc for errors.
func (c *Client) Isolate(ctx context.Context, slot Slot, machineID string, t IsolationType, comment string) (MachineAction, error) {
	op := "isolate machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return MachineAction{}, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	switch t {
	case Full, Selective, UnManagedDevice:
	default:
		return MachineAction{}, badRequest(op, fmt.Sprintf("isolation type %q is not Full, Selective or UnManagedDevice", string(t)))
	}
	if err := checkComment(op, comment); err != nil {
		return MachineAction{}, err
	}
	var a MachineAction
	err := c.do(ctx, call{
		op: op, method: http.MethodPost, budget: BudgetIsolate, slot: slot,
		path: "/api/machines/" + url.PathEscape(machineID) + "/isolate",
		body: encodeJSON(isolateBody{Comment: comment, IsolationType: t}),
	}, &a)
	return a, err
}

// Unisolate asks MDE to release a machine from isolation; slot as for
// Isolate.
func (c *Client) Unisolate(ctx context.Context, slot Slot, machineID, comment string) (MachineAction, error) {
	op := "unisolate machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return MachineAction{}, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	if err := checkComment(op, comment); err != nil {
		return MachineAction{}, err
	}
	var a MachineAction
	err := c.do(ctx, call{
		op: op, method: http.MethodPost, budget: BudgetUnisolate, slot: slot,
		path: "/api/machines/" + url.PathEscape(machineID) + "/unisolate",
		body: encodeJSON(commentBody{Comment: comment}),
	}, &a)
	return a, err
}

// CancelMachineAction cancels an action that is not yet final; slot as for
// Isolate.
func (c *Client) CancelMachineAction(ctx context.Context, slot Slot, actionID, comment string) (MachineAction, error) {
	op := "cancel machine action " + truncate(actionID, 40)
	if !ValidActionID(actionID) {
		return MachineAction{}, badRequest(op, "the action id must be a GUID")
	}
	if err := checkComment(op, comment); err != nil {
		return MachineAction{}, err
	}
	var a MachineAction
	err := c.do(ctx, call{
		op: op, method: http.MethodPost, budget: BudgetCancel, slot: slot,
		path: "/api/machineactions/" + url.PathEscape(actionID) + "/cancel",
		body: encodeJSON(commentBody{Comment: comment}),
	}, &a)
	return a, err
}

// MachineAction reads one action.
func (c *Client) MachineAction(ctx context.Context, actionID string) (MachineAction, error) {
	op := "get machine action " + truncate(actionID, 40)
	if !ValidActionID(actionID) {
		return MachineAction{}, badRequest(op, "the action id must be a GUID")
	}
	var a MachineAction
	err := c.do(ctx, call{
		op: op, method: http.MethodGet, budget: BudgetMachineActions,
		path: "/api/machineactions/" + url.PathEscape(actionID),
	}, &a)
	return a, err
}

// Machine reads one machine by id.
func (c *Client) Machine(ctx context.Context, machineID string) (Machine, error) {
	op := "get machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return Machine{}, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	var m Machine
	err := c.do(ctx, call{
		op: op, method: http.MethodGet, budget: BudgetMachines,
		path: "/api/machines/" + url.PathEscape(machineID),
	}, &m)
	return m, err
}

// MachineActions lists a machine's Isolate and Unisolate actions, newest
// first: `machineId eq '…' and (type eq 'Isolate' or type eq 'Unisolate')`
// with $top MaxActionsPerMachine (more is ErrTruncated).
func (c *Client) MachineActions(ctx context.Context, machineID string) ([]MachineAction, error) {
	op := "list actions of machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return nil, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	return c.isolationActions(ctx, op, []string{machineID}, MaxActionsPerMachine)
}

// SortNewestFirst orders actions by CreationDateTimeUTC, newest first; ties
// keep their order.
func SortNewestFirst(acts []MachineAction) {
	sort.SliceStable(acts, func(i, j int) bool {
		return acts[i].CreationDateTimeUTC.After(acts[j].CreationDateTimeUTC)
	})
}

// FindMachinesByName finds machines whose computerDnsName is name; if none
// and name has no dot, those whose name starts with name + ".". No match is
// an empty slice, not an error.
func (c *Client) FindMachinesByName(ctx context.Context, name string) ([]Machine, error) {
	op := fmt.Sprintf("find machines named %q", truncate(name, 80))
	if err := checkHostName(name); err != nil {
		return nil, badRequest(op, err.Error())
	}
	ms, err := c.listMachines(ctx, op, nameEqFilter(name))
	if err != nil || len(ms) > 0 || strings.Contains(name, ".") {
		return ms, err
	}
	return c.listMachines(ctx, op, namePrefixFilter(name))
}

func (c *Client) listMachines(ctx context.Context, op, filter string) ([]Machine, error) {
	var page struct {
		Value []Machine `json:"value"`
	}
	err := c.do(ctx, call{
		op: op, method: http.MethodGet, budget: BudgetMachines,
		path: "/api/machines", query: filterQuery(filter), final404: true, // a typo costs no more calls
	}, &page)
	if errors.Is(err, ErrNotFound) {
		return []Machine{}, nil // MDE answers 404 when no recent machine matches
	}
	if err != nil {
		return nil, err
	}
	if page.Value == nil {
		return []Machine{}, nil
	}
	return page.Value, nil
}
