package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// CreateDevice creates the passwordless account name and its device
// record; errs.ErrNameTaken, or errs.ErrQuotaExceeded when max devices
// exist.
func (s *Store) CreateDevice(_ context.Context, name string, secret []byte, max int) (model.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.devices) >= max {
		return model.Device{}, fmt.Errorf("%w: there are %d devices, the limit is %d", errs.ErrQuotaExceeded, len(s.devices), max)
	}
	if s.nameID(name) != "" {
		return model.Device{}, fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	s.userSeq++
	id := strconv.FormatInt(s.userSeq, 10)
	now := s.now().UnixMilli()
	s.users[id] = model.User{ID: id, Name: name, Created: now, Device: true}
	s.names[model.FoldName(name)] = id
	d := model.Device{ID: id, Name: name, Secret: bytes.Clone(secret), Created: now}
	if s.devices == nil {
		s.devices = map[string]*model.Device{}
	}
	s.devices[id] = &d
	return d, nil
}

// Device reads uid's device record; errs.ErrNotFound when uid is no device.
func (s *Store) Device(_ context.Context, uid string) (model.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.device(uid)
	if err != nil {
		return model.Device{}, err
	}
	out := *d
	out.Secret = bytes.Clone(d.Secret)
	return out, nil
}

func (s *Store) device(uid string) (*model.Device, error) {
	d := s.devices[uid]
	if d == nil {
		return nil, fmt.Errorf("%w: no device %q", errs.ErrNotFound, uid)
	}
	return d, nil
}

// ListDevices returns up to n devices with an id above after, in id order,
// without secrets.
func (s *Store) ListDevices(_ context.Context, after string, n int) ([]model.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, _ := strconv.ParseUint(after, 10, 64)
	var ids []uint64
	for id := range s.devices {
		if v, _ := strconv.ParseUint(id, 10, 64); v > from {
			ids = append(ids, v)
		}
	}
	slices.Sort(ids)
	out := make([]model.Device, 0, min(n, len(ids)))
	for _, v := range ids[:min(n, len(ids))] {
		d := *s.devices[strconv.FormatUint(v, 10)]
		d.Secret = nil
		out = append(out, d)
	}
	return out, nil
}

// SetDeviceSecret replaces uid's credential hash (reinstating a revoked
// device).
func (s *Store) SetDeviceSecret(_ context.Context, uid string, secret []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.device(uid)
	if err != nil {
		return err
	}
	d.Secret, d.Revoked = bytes.Clone(secret), 0
	return nil
}

// RevokeDevice deletes uid's credential.
func (s *Store) RevokeDevice(_ context.Context, uid string, at int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.device(uid)
	if err != nil {
		return err
	}
	d.Secret = nil
	if d.Revoked == 0 {
		d.Revoked = at
	}
	return nil
}

// DeviceConnected records a connect with the credential hashed to secret
// and returns when the device was seen before; with clean its inbox counts
// as acknowledged up to its head.
func (s *Store) DeviceConnected(_ context.Context, uid string, secret []byte, at int64, clean bool) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[uid]
	if d == nil || d.Secret == nil || !bytes.Equal(d.Secret, secret) {
		return 0, fmt.Errorf("%w: device %s: the credential changed", errs.ErrBadAccount, uid)
	}
	prev := d.Seen
	d.Seen = max(d.Seen, at)
	if clean {
		b := s.inboxOf(uid)
		b.ack = max(b.ack, b.seq)
	}
	return prev, nil
}

// DevicesSeen records a disconnect for those of uids that are devices.
func (s *Store) DevicesSeen(_ context.Context, uids []string, at int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, uid := range uids {
		if d := s.devices[uid]; d != nil {
			d.Seen = max(d.Seen, at)
		}
	}
	return nil
}
