package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestEventDecideRequest(t *testing.T) {
	tests := []struct {
		file string
		want DecideRequest
	}{
		{"call_action.json", DecideRequest{
			EventID:      "eb0fc709-9693-11ea-454d-1705dde98182",
			CallID:       "a1d6a5e3-efec-11e9-b999-7d370b5f90d1",
			SessionID:    "a1d6a5e2-efec-11e9-b999-efc71013a78f",
			SubAccountID: "your_subaccount_id",
			CallStatus:   "CALL_RECEIVED",
			Source:       "+65123456789",
			Destination:  "+65987654321",
		}},
		{"call_action_completed.json", DecideRequest{
			EventID:        "0c5a0f1e-9694-11ea-8a1b-2b1f7d0e9a11",
			CallID:         "a1d6a5e3-efec-11e9-b999-7d370b5f90d1",
			SessionID:      "a1d6a5e2-efec-11e9-b999-efc71013a78f",
			SubAccountID:   "your_subaccount_id",
			CallStatus:     "ACTION_COMPLETED",
			Source:         "+65123456789",
			Destination:    "+65987654321",
			ClientActionID: "NumberMaskingId1",
			DTMF:           "1234#",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev, err := ParseEvent(readFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.DecideRequest(); got != tt.want {
				t.Errorf("DecideRequest() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecideRequestJSON(t *testing.T) {
	tests := []struct {
		name string
		req  DecideRequest
		want string // exact encoding; "" to check only the round trip
	}{
		{"all fields", DecideRequest{
			EventID: "e", CallID: "c", SessionID: "s", SubAccountID: "a", CallStatus: "CALL_RECEIVED",
			Source: "+6512345678", Destination: "+6587654321", ClientActionID: "act-1", DTMF: "12#",
		}, `{"eventId":"e","callId":"c","sessionId":"s","subAccountId":"a","callStatus":"CALL_RECEIVED","source":"+6512345678","destination":"+6587654321","clientActionId":"act-1","dtmf":"12#"}`},
		{"dtmf without clientActionId", DecideRequest{
			EventID: "e", CallID: "c", SessionID: "s", SubAccountID: "a", Source: "1", Destination: "2", DTMF: "*0",
		}, `{"eventId":"e","callId":"c","sessionId":"s","subAccountId":"a","source":"1","destination":"2","dtmf":"*0"}`},
		{"optional fields omitted", DecideRequest{
			EventID: "e", CallID: "c", SessionID: "s", SubAccountID: "a", Source: "1", Destination: "2",
		}, `{"eventId":"e","callId":"c","sessionId":"s","subAccountId":"a","source":"1","destination":"2"}`},
		{"zero value", DecideRequest{}, `{"eventId":"","callId":"","sessionId":"","subAccountId":"","source":"","destination":""}`},
		{"escaping", DecideRequest{
			EventID: `q"uote`, CallID: `back\slash`, SessionID: "new\nline", SubAccountID: "tab\tcontrol\x01",
			Source: "unicode ☎ 日本", Destination: "</script>&",
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.req.AppendJSON(nil)
			if !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
			if tt.want != "" && string(out) != tt.want {
				t.Errorf("AppendJSON =\n%s\nwant\n%s", out, tt.want)
			}
			got, err := ParseDecideRequest(out)
			if err != nil {
				t.Fatalf("ParseDecideRequest: %v", err)
			}
			if got != tt.req {
				t.Errorf("round trip =\n%+v\nwant\n%+v", got, tt.req)
			}
			// encoding/json reads it the same way.
			var std DecideRequest
			if err := json.Unmarshal(out, &std); err != nil || std != tt.req {
				t.Errorf("encoding/json = %+v, %v", std, err)
			}
			prefix := []byte("prefix:")
			if appended := tt.req.AppendJSON(bytes.Clone(prefix)); !bytes.Equal(appended, append(prefix, out...)) {
				t.Errorf("AppendJSON does not append: %s", appended)
			}
		})
	}
}

func TestParseDecideRequestInvalid(t *testing.T) {
	for _, body := range []string{"", "not json", `{"eventId":1}`, `[]`, `{"eventId":"e"`, `{"dtmf":12}`} {
		if _, err := ParseDecideRequest([]byte(body)); err == nil {
			t.Errorf("ParseDecideRequest(%q) accepted", body)
		}
	}
}
