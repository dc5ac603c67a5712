package wire

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func vnuBody(payload string) []byte {
	return []byte(`{"namespace":"VOICE","eventType":"VIRTUAL_NUMBER_UPDATE","description":"x","payload":` + payload + `}`)
}

func TestParseVirtualNumberUpdateExample(t *testing.T) {
	body, err := os.ReadFile("testdata/virtual_number_update.json")
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseVirtualNumberUpdate(body)
	if err != nil {
		t.Fatal(err)
	}
	want := &VirtualNumberUpdate{
		SubAccountID: "your_subaccount_id", UpdateEventType: VNUSnapshot, TotalNumbers: 2,
		Numbers: []VirtualNumber{
			{MSISDN: "+6512345678", UpdatedAt: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC), CountryCode: "SG", OperationalStatus: "Active", ReferenceID: "vn-ref-1"},
			{MSISDN: "+6512345679", UpdatedAt: time.Date(2024, 3, 1, 10, 5, 0, 0, time.UTC), CountryCode: "SG", OperationalStatus: "Unhealthy", ReferenceID: "vn-ref-1"},
		},
	}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("got %+v\nwant %+v", u, want)
	}
}

func TestParseVirtualNumberUpdateTimestamps(t *testing.T) {
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ts   string
		want time.Time
	}{
		{`"2024-03-01T10:00:00Z"`, at},
		{`"2024-03-01T10:00:00.250Z"`, at.Add(250 * time.Millisecond)},
		{`"2024-03-01T18:00:00+08:00"`, at},
		{`"2024-03-01T18:00:00.5+0800"`, at.Add(500 * time.Millisecond)},
		{`"2024-03-01T10:00:00"`, at},
		{`"2024-03-01 10:00:00"`, at},
		{`"2024-03-01 10:00:00.123456"`, at.Add(123456 * time.Microsecond)},
		{`"2024-03-01 18:00:00+08:00"`, at},
		{`1709287200`, at},
		{`1709287200.5`, at.Add(500 * time.Millisecond)},
		{`"1709287200"`, at},
		{`1709287200123`, at.Add(123 * time.Millisecond)},
		{`"1709287200123"`, at.Add(123 * time.Millisecond)},
		{`" 2024-03-01T10:00:00Z "`, at},
		{`"yesterday"`, time.Time{}},
		{`"01/03/2024"`, time.Time{}},
		{`-5`, time.Time{}},
		{`true`, time.Time{}},
		{`{}`, time.Time{}},
		{`null`, time.Time{}},
		{`""`, time.Time{}},
	} {
		t.Run(tc.ts, func(t *testing.T) {
			u, err := ParseVirtualNumberUpdate(vnuBody(`{"subAccountId":"acme","updateEventType":"UPDATES","virtualNumbers":[{"msisdn":"+6512345678","updatedTimestamp":` + tc.ts + `}]}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Numbers[0].UpdatedAt; !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Errorf("UpdatedAt = %v, want %v (UTC)", got, tc.want)
			}
			unreadable := tc.want.IsZero() && tc.ts != "null"
			if noted := strings.Contains(strings.Join(u.Ignored, ";"), "updatedTimestamp"); noted != unreadable {
				t.Errorf("Ignored = %q; want a note on updatedTimestamp: %v", u.Ignored, unreadable)
			}
		})
	}
}

func TestParseVirtualNumberUpdateLiberal(t *testing.T) {
	u, err := ParseVirtualNumberUpdate(vnuBody(`{
		"subAccountId": " acme ", "updateEventType": "snapshot", "totalNumbers": "3", "unknown": {"a": [1]},
		"virtualNumbers": [
			{"msisdn": 6512345678, "operationalStatus": "ACTIVE", "countryCode": "sg", "referenceId": 42, "rentalPrice": 2.5, "extra": null},
			{"msisdn": "+65 1234-5679", "operationalStatus": " unhealthy ", "countryCode": "Singapore"},
			{"msisdn": "6512345680", "operationalStatus": "Suspended"}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []VirtualNumber{
		{MSISDN: "+6512345678", CountryCode: "SG", OperationalStatus: "Active", ReferenceID: "42"},
		{MSISDN: "+6512345679", OperationalStatus: "Unhealthy"},
		{MSISDN: "+6512345680", OperationalStatus: "Suspended"},
	}
	if u.SubAccountID != "acme" || u.UpdateEventType != VNUSnapshot || u.TotalNumbers != 3 || !reflect.DeepEqual(u.Numbers, want) {
		t.Fatalf("got %+v", u)
	}
	if len(u.Ignored) != 0 {
		t.Errorf("Ignored = %q, want none", u.Ignored)
	}
}

// A SNAPSHOT that cannot be the whole pool deactivates nothing: it reads
// as UPDATES, and an UPDATES is never a SNAPSHOT.
func TestParseVirtualNumberUpdateNotWhole(t *testing.T) {
	for _, tc := range []struct {
		name, payload, kind string
		numbers             int
		ignored             string
	}{
		{"entry without msisdn", `{"subAccountId":"a","updateEventType":"SNAPSHOT","virtualNumbers":[{"msisdn":"+6512345678"},{"operationalStatus":"Active"}]}`, VNUUpdates, 1, "no msisdn"},
		{"entry not a number", `{"subAccountId":"a","updateEventType":"SNAPSHOT","virtualNumbers":[{"msisdn":"+6512345678"},{"msisdn":"call me"}]}`, VNUUpdates, 1, "not a phone number"},
		{"entry not an object", `{"subAccountId":"a","updateEventType":"SNAPSHOT","virtualNumbers":["+6512345678"]}`, VNUUpdates, 0, "not an object"},
		{"one page of several", `{"subAccountId":"a","updateEventType":"SNAPSHOT","totalNumbers":3,"virtualNumbers":[{"msisdn":"+6512345678"}]}`, VNUUpdates, 1, "lists 1 of totalNumbers 3"},
		{"empty pool", `{"subAccountId":"a","updateEventType":"SNAPSHOT","totalNumbers":0,"virtualNumbers":[]}`, VNUSnapshot, 0, ""},
		{"whole", `{"subAccountId":"a","updateEventType":"SNAPSHOT","totalNumbers":1,"virtualNumbers":[{"msisdn":"+6512345678"}]}`, VNUSnapshot, 1, ""},
		{"unknown type", `{"subAccountId":"a","updateEventType":"DELTA","virtualNumbers":[{"msisdn":"+6512345678"}]}`, VNUUpdates, 1, `"DELTA": read as UPDATES`},
		{"no type", `{"subAccountId":"a","virtualNumbers":[{"msisdn":"+6512345678"}]}`, VNUUpdates, 1, "absent"},
		{"updates without numbers", `{"subAccountId":"a","updateEventType":"UPDATES"}`, VNUUpdates, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseVirtualNumberUpdate(vnuBody(tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			if u.UpdateEventType != tc.kind || len(u.Numbers) != tc.numbers {
				t.Errorf("%s with %d numbers, want %s with %d", u.UpdateEventType, len(u.Numbers), tc.kind, tc.numbers)
			}
			ignored := strings.Join(u.Ignored, "; ")
			if (tc.ignored == "") != (ignored == "") || !strings.Contains(ignored, tc.ignored) {
				t.Errorf("Ignored = %q, want it to say %q", ignored, tc.ignored)
			}
		})
	}
}

func TestParseVirtualNumberUpdateRefused(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
	}{
		{"not JSON", `{"eventType":`, "body"},
		{"not an object", `[1]`, "body"},
		{"empty", ``, "body"},
		{"other event", `{"eventType":"CALL_STATUS","payload":{"subAccountId":"a"}}`, "eventType"},
		{"no event type", `{"payload":{"subAccountId":"a"}}`, "eventType"},
		{"no payload", `{"eventType":"VIRTUAL_NUMBER_UPDATE"}`, "payload"},
		{"payload a string", `{"eventType":"VIRTUAL_NUMBER_UPDATE","payload":"x"}`, "payload"},
		{"no sub-account", string(vnuBody(`{"updateEventType":"UPDATES","virtualNumbers":[]}`)), "payload.subAccountId"},
		{"blank sub-account", string(vnuBody(`{"subAccountId":"  ","virtualNumbers":[]}`)), "payload.subAccountId"},
		{"numbers not a list", string(vnuBody(`{"subAccountId":"a","virtualNumbers":{"msisdn":"+6512345678"}}`)), "payload.virtualNumbers"},
		{"snapshot without numbers", string(vnuBody(`{"subAccountId":"a","updateEventType":"SNAPSHOT"}`)), "payload.virtualNumbers"},
		{"snapshot with null numbers", string(vnuBody(`{"subAccountId":"a","updateEventType":"SNAPSHOT","virtualNumbers":null}`)), "payload.virtualNumbers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseVirtualNumberUpdate([]byte(tc.body))
			var fe *FieldError
			if !errors.Is(err, ErrInvalidEvent) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("error %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
}
