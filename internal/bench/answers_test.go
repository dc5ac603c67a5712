package bench

import "testing"

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		body string
		want Answer
	}{
		{"makeCall", KindInSession, `{"clientActionId":"0123abcd","callflow":[{"action":"makeCall","params":{"source":"+6598765432","destination":"+6587654321"}}]}`, AnswerConnect},
		{"greeting then makeCall", KindInSession, `{"clientActionId":"0123abcd","callflow":[{"action":"say","params":{"text":"Hi"}},{"action":"makeCall","params":{"source":"+6598765432","destination":"+6587654321"}}]}`, AnswerConnect},
		{"out of session", KindOutOfSession, `{"clientActionId":"out-of-session","callflow":[{"action":"say","params":{"text":"Sorry"}},{"action":"hangup"}]}`, AnswerOutOfSession},
		{"fallback", KindInSession, `{"clientActionId":"fallback","callflow":[{"action":"say","params":{"text":"Sorry"}},{"action":"hangup"}]}`, AnswerFallback},
		{"other callflow", KindInSession, `{"clientActionId":"x","callflow":[{"action":"hangup"}]}`, AnswerOther},
		{"makeCall without destination", KindInSession, `{"clientActionId":"x","callflow":[{"action":"makeCall","params":{"source":"+6598765432"}}]}`, AnswerBad},
		{"empty callflow", KindInSession, `{"clientActionId":"x","callflow":[]}`, AnswerBad},
		{"unknown action", KindInSession, `{"clientActionId":"x","callflow":[{"action":"dance"}]}`, AnswerBad},
		{"not JSON", KindInSession, `<html>oops</html>`, AnswerBad},
		{"trailing garbage", KindInSession, `{"clientActionId":"x","callflow":[{"action":"hangup"}]}x`, AnswerBad},
		{"empty body", KindOutOfSession, ``, AnswerBad},
		{"an ack to a call is not a callflow", KindInSession, `{"status":"received","id":"e1"}`, AnswerBad},
		{"ack", KindStatus, `{"status":"received","id":"e1"}`, AnswerAck},
		{"ack of a summary", KindSummary, ` {"status":"received","id":"0af3"}` + "\n", AnswerAck},
		{"ack that is not JSON", KindStatus, `ok`, AnswerBad},
		{"ack that is an array", KindStatus, `[1]`, AnswerBad},
		{"empty ack", KindSummary, ``, AnswerBad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClassifier()
			for i := range 3 { // the second and third come from the cache
				if got := c.classify(tt.kind, []byte(tt.body)); got != tt.want {
					t.Errorf("call %d: %v, want %v", i, got, tt.want)
				}
			}
		})
	}
}

func TestClassifierCacheBounded(t *testing.T) {
	c := newClassifier()
	for i := range classifierCacheSize + 100 {
		body := `{"clientActionId":"s` + string(rune('a'+i%26)) + itoa(i) + `","callflow":[{"action":"makeCall","params":{"source":"+6598765432","destination":"+6587654321"}}]}`
		if c.classify(KindInSession, []byte(body)) != AnswerConnect {
			t.Fatal("misclassified")
		}
	}
	if len(c.seen) != classifierCacheSize {
		t.Errorf("cache holds %d answers, bound is %d", len(c.seen), classifierCacheSize)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
