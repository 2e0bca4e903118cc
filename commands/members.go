package commands

import (
	"context"
	"errors"
	"strings"
	"time"
)

type groupHit struct {
	members map[string]bool
	at      time.Time
}

// isMember reports whether user is listed in ids directly or through one of
// the listed user groups (S…). A Directory failure is an error: callers
// fail closed.
func (s *Service) isMember(ctx context.Context, user string, ids []string) (bool, error) {
	for _, id := range ids {
		if id == user {
			return true, nil
		}
	}
	var errs []error
	for _, id := range ids {
		if !strings.HasPrefix(id, "S") {
			continue
		}
		members, err := s.groupMembers(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if members[user] {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

func (s *Service) groupMembers(ctx context.Context, group string) (map[string]bool, error) {
	now := s.now()
	s.mu.Lock()
	hit, ok := s.groups[group]
	s.mu.Unlock()
	if ok && now.Sub(hit.at) < s.cfg.GroupCacheTTL {
		return hit.members, nil
	}
	if s.d.Directory == nil {
		return nil, errors.New("no user directory is configured to resolve user group " + group)
	}
	list, err := s.d.Directory.GroupMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(list))
	for _, u := range list {
		m[u] = true
	}
	s.mu.Lock()
	s.groups[group] = groupHit{members: m, at: now}
	s.mu.Unlock()
	return m, nil
}
