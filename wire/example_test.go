package wire_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/callflow/callflow/wire"
)

func ExampleParseEvent() {
	body, err := os.ReadFile("testdata/call_action.json")
	if err != nil {
		panic(err)
	}
	ev, err := wire.ParseEvent(body)
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.EventType, ev.Payload.Source, "->", ev.Payload.Destination)
	fmt.Println(ev.RecordID(body))
	fmt.Println(wire.Subject(ev.EventType, ev.Payload.SubAccountID))
	// Output:
	// CALL_ACTION +65123456789 -> +65987654321
	// eb0fc709-9693-11ea-454d-1705dde98182
	// calls.CALL_ACTION.your_subaccount_id
}

func ExampleParseEvent_invalid() {
	_, err := wire.ParseEvent([]byte(`{"namespace":"VOICE","eventType":"CALL_ACTION","payload":{"sipCode":1.5}}`))
	var fe *wire.FieldError
	fmt.Println(errors.Is(err, wire.ErrInvalidEvent), errors.As(err, &fe), fe.Field)
	// Output: true true payload.sipCode
}

func ExampleResponse_AppendJSON() {
	r := wire.Response{
		ClientActionID: "NumberMaskingId1",
		Callflow:       []wire.Action{wire.MakeCall("+6512345678", "+6587654321", false)},
	}
	fmt.Println(string(r.AppendJSON(nil)))
	// Output: {"clientActionId":"NumberMaskingId1","callflow":[{"action":"makeCall","params":{"source":"+6512345678","destination":"+6587654321"}}]}
}

func ExampleSayThenHangup() {
	r := wire.SayThenHangup("oos", wire.Say{Text: "This number is not in service.", VoiceProfile: "en-US-ZiraRUS"})
	fmt.Println(string(r.JSON()))
	// Output: {"clientActionId":"oos","callflow":[{"action":"say","params":{"text":"This number is not in service.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}
}

func ExampleCleanNumber() {
	for _, in := range []string{"+65 1234-5678", "(65) 8765.4321", "0065 1234 5678", "1-800-FLOWERS"} {
		n, err := wire.CleanNumber(in)
		fmt.Printf("%q %q %v\n", in, n, err)
	}
	// Output:
	// "+65 1234-5678" "+6512345678" <nil>
	// "(65) 8765.4321" "+6587654321" <nil>
	// "0065 1234 5678" "" invalid phone number
	// "1-800-FLOWERS" "" invalid phone number
}

func ExampleSubjectToken() {
	fmt.Println(wire.SubjectToken("acct.eu *prod>"), wire.SubjectToken(""), wire.Subject("CALL_ACTION", "café"))
	// Output: acct_eu__prod_ _ calls.CALL_ACTION.caf_
}

func ExampleSayAndCaptureAction() {
	state := wire.FlowState{Flow: "main-menu", Version: 3, Step: "welcome"}
	r := wire.Response{
		ClientActionID: state.ClientActionID(),
		Callflow: []wire.Action{wire.SayAndCaptureAction(wire.Capture{
			Say:       wire.Say{Text: "For sales press 1. For your driver press 2."},
			MaxDigits: 1, OverallTimeout: 5000, NoOfTries: 1,
		})},
	}
	fmt.Println(r.Validate())
	fmt.Println(string(r.JSON()))
	// Output:
	// <nil>
	// {"clientActionId":"flow:main-menu:3:welcome:0","callflow":[{"action":"sayAndCapture","params":{"text":"For sales press 1. For your driver press 2.","maxDigits":1,"overallTimeout":5000,"completeOnHash":false,"noOfTries":1}}]}
}

func ExampleParseFlowState() {
	// The CALL_ACTION that follows carries the id back, and the digits.
	for _, id := range []string{"flow:main-menu:3:welcome:1", "flow:main-menu:03:welcome:1", "NumberMaskingId1"} {
		s, ok := wire.ParseFlowState(id)
		fmt.Printf("%q %v %+v\n", id, ok, s)
	}
	// Output:
	// "flow:main-menu:3:welcome:1" true {Flow:main-menu Version:3 Step:welcome Tries:1 Restarted:false Session:}
	// "flow:main-menu:03:welcome:1" false {Flow: Version:0 Step: Tries:0 Restarted:false Session:}
	// "NumberMaskingId1" false {Flow: Version:0 Step: Tries:0 Restarted:false Session:}
}
