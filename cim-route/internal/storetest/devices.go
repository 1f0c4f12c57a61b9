package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Devices: created as passwordless accounts with a credential hash, names
// unique among all users, bounded in number (also under concurrent
// creations), listed in id order page by page, revoked and given a new
// credential; a connect checks the credential is still the one verified,
// returns when the device was seen before and, clean, acknowledges the
// inbox up to its head; disconnects move seen for devices only.
func Devices(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	hash := func(i int) []byte { return bytes.Repeat([]byte{byte(i), 0, 0xff, '|'}, 8) } // 32 bytes, not UTF-8
	alice := must(s.CreateUser(ctx, "alice", "hash-a"))(t)
	if _, err := s.CreateDevice(ctx, "ALICE", hash(1), 10); !errors.Is(err, errs.ErrNameTaken) {
		t.Fatalf("device named like a user: %v, want ErrNameTaken", err)
	}
	d1 := must(s.CreateDevice(ctx, "Sensor-1", hash(1), 10))(t)
	if d1.ID == "" || d1.ID == alice || d1.Name != "Sensor-1" || !bytes.Equal(d1.Secret, hash(1)) || d1.Created == 0 {
		t.Fatalf("CreateDevice = %+v", d1)
	}
	// The device is an account like any other, without a password.
	u := must(s.UserByName(ctx, "sensor-1"))(t)
	if u.ID != d1.ID || u.Name != "Sensor-1" || u.PasswordHash != "" || !u.Device {
		t.Fatalf("the device's account = %+v", u)
	}
	if must(s.UserByID(ctx, alice))(t).Device {
		t.Fatal("a user is a device")
	}
	if _, err := s.CreateUser(ctx, "sensor-1", "h"); !errors.Is(err, errs.ErrNameTaken) {
		t.Fatalf("user named like a device: %v", err)
	}
	if _, err := s.CreateDevice(ctx, "sensor-1", hash(2), 10); !errors.Is(err, errs.ErrNameTaken) {
		t.Fatalf("second device of one name: %v", err)
	}
	got := must(s.Device(ctx, d1.ID))(t)
	if got.ID != d1.ID || got.Name != "Sensor-1" || !bytes.Equal(got.Secret, hash(1)) || got.Created != d1.Created || got.Revoked != 0 || got.Seen != 0 {
		t.Fatalf("Device = %+v, want %+v", got, d1)
	}
	for _, id := range []string{alice, "999"} {
		if _, err := s.Device(ctx, id); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("Device(%s) (no device): %v, want ErrNotFound", id, err)
		}
		if err := s.RevokeDevice(ctx, id, 1); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("RevokeDevice(%s): %v", id, err)
		}
		if err := s.SetDeviceSecret(ctx, id, hash(3)); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("SetDeviceSecret(%s): %v", id, err)
		}
	}

	// Connects: the first was never seen before; clean acknowledges what
	// the inbox holds.
	if _, err := s.DeviceConnected(ctx, d1.ID, hash(9), 1000, false); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("connect with another credential: %v, want ErrBadAccount", err)
	}
	if prev := must(s.DeviceConnected(ctx, d1.ID, hash(1), 1000, false))(t); prev != 0 {
		t.Fatalf("first connect: seen before at %d", prev)
	}
	write(t, s, model.Append{UserID: d1.ID, Frame: frame("a"), TS: 1}, model.Append{UserID: d1.ID, Frame: frame("b"), TS: 1})
	if prev := must(s.DeviceConnected(ctx, d1.ID, hash(1), 2000, false))(t); prev != 1000 {
		t.Fatalf("second connect: seen before at %d, want 1000", prev)
	}
	acked := func() uint64 {
		r := must(s.Ranges(ctx, []model.RangeQuery{{UserID: d1.ID, Limit: 1}}))(t)
		return r[0].Acked
	}
	if a := acked(); a != 0 {
		t.Fatalf("acked %d after a connect that was not clean", a)
	}
	if prev := must(s.DeviceConnected(ctx, d1.ID, hash(1), 1500, true))(t); prev != 2000 {
		t.Fatalf("clean connect: seen before at %d, want 2000", prev)
	}
	if a := acked(); a != 2 {
		t.Fatalf("acked %d after a clean connect, want the head 2", a)
	}
	if err := s.DevicesSeen(ctx, []string{alice, d1.ID, "999"}, 3000); err != nil {
		t.Fatal(err)
	}
	if err := s.DevicesSeen(ctx, []string{d1.ID}, 2500); err != nil { // earlier: no change
		t.Fatal(err)
	}
	if d := must(s.Device(ctx, d1.ID))(t); d.Seen != 3000 {
		t.Fatalf("seen %d, want 3000 (it never goes back)", d.Seen)
	}
	if _, err := s.Device(ctx, alice); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("DevicesSeen made a user a device: %v", err)
	}

	// Revoked: no credential, the record stays; a new one reinstates it.
	if err := s.RevokeDevice(ctx, d1.ID, 4000); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeDevice(ctx, d1.ID, 4500); err != nil { // again: the first time stays
		t.Fatal(err)
	}
	if d := must(s.Device(ctx, d1.ID))(t); d.Secret != nil || d.Revoked != 4000 || d.Name != "Sensor-1" || d.Seen != 3000 {
		t.Fatalf("revoked device = %+v", d)
	}
	if _, err := s.DeviceConnected(ctx, d1.ID, hash(1), 5000, false); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("connect of a revoked device: %v", err)
	}
	if err := s.SetDeviceSecret(ctx, d1.ID, hash(4)); err != nil {
		t.Fatal(err)
	}
	if d := must(s.Device(ctx, d1.ID))(t); !bytes.Equal(d.Secret, hash(4)) || d.Revoked != 0 {
		t.Fatalf("device with a new credential = %+v", d)
	}
	if _, err := s.DeviceConnected(ctx, d1.ID, hash(1), 5000, false); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("connect with the old credential: %v", err)
	}

	// The bound, and the list in pages.
	var ids []string
	ids = append(ids, d1.ID)
	for i := 2; i <= 5; i++ {
		ids = append(ids, must(s.CreateDevice(ctx, fmt.Sprintf("sensor-%d", i), hash(i), 5))(t).ID)
	}
	if _, err := s.CreateDevice(ctx, "sensor-6", hash(6), 5); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("device over the limit: %v, want ErrQuotaExceeded", err)
	}
	if taken := must(s.NameTaken(ctx, "sensor-6"))(t); taken {
		t.Fatal("a refused device's name is taken")
	}
	var listed []string
	after := ""
	for {
		page := must(s.ListDevices(ctx, after, 2))(t)
		for _, d := range page {
			if d.Secret != nil || d.Name == "" || d.Created == 0 {
				t.Fatalf("listed %+v", d)
			}
			listed = append(listed, d.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(listed, ids) {
		t.Fatalf("listed %v, want %v", listed, ids)
	}
	if page := must(s.ListDevices(ctx, ids[0], 10))(t); len(page) != 4 || page[0].ID != ids[1] || page[0].Name != "sensor-2" {
		t.Fatalf("page after %s = %+v", ids[0], page)
	}
	if page := must(s.ListDevices(ctx, "", 1))(t); len(page) != 1 || page[0].Revoked != 0 || page[0].Seen != 3000 {
		t.Fatalf("first page = %+v", page)
	}

	// Concurrent creations never pass the bound.
	s2 := newStore(t, model.InboxLimits{})
	var mu sync.Mutex
	created := 0
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			_, err := s2.CreateDevice(ctx, fmt.Sprintf("dev-%d", i), hash(i), 4)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case !errors.Is(err, errs.ErrQuotaExceeded):
				t.Errorf("dev-%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := len(must(s2.ListDevices(ctx, "", 100))(t)); created != 4 || n != 4 {
		t.Fatalf("%d creations succeeded and %d devices listed under a limit of 4", created, n)
	}
}
