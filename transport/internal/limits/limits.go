// Package limits holds the checks both servers run on a request's encoded
// bytes before decoding them.
package limits

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/commitlog-go/commitlog/transport"
)

// batchRecordsField is log.v1.ProduceBatchRequest's repeated records field.
const batchRecordsField protowire.Number = 1

// CheckBatchProto returns a ResourceExhausted error when the binary
// ProduceBatchRequest in data holds more than max records. It reads only the
// top-level field headers and allocates nothing, so a 4 MiB request of
// millions of empty records is refused for the cost of a scan. Malformed
// bytes are left to the decoder.
func CheckBatchProto(data []byte, max int) error {
	n := 0
	for len(data) > 0 {
		num, typ, tagLen := protowire.ConsumeTag(data)
		if tagLen < 0 {
			return nil
		}
		valLen := protowire.ConsumeFieldValue(num, typ, data[tagLen:])
		if valLen < 0 {
			return nil
		}
		if num == batchRecordsField {
			if n++; n > max {
				return tooMany(max)
			}
		}
		data = data[tagLen+valLen:]
	}
	return nil
}

// CheckBatchJSON is CheckBatchProto for the JSON form. It counts the objects
// directly inside an array that is a member of the request object: the
// records (the request's only repeated message field), and nothing else a
// valid request holds (a record's headers nest deeper, the producer is no
// array's element, braces in strings are skipped). It scans the bytes once
// and allocates nothing; malformed bytes are left to the decoder.
func CheckBatchJSON(data []byte, max int) error {
	n, depth := 0, 0
	inArray := false // the container at depth 2 is an array
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			if depth == 2 {
				inArray = data[i] == '['
			}
			if depth == 3 && inArray && data[i] == '{' {
				if n++; n > max {
					return tooMany(max)
				}
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

func tooMany(max int) error {
	return transport.Errorf(transport.ResourceExhausted, "a ProduceBatch may carry at most %d records", max)
}

// TooLarge is the error for a message of n bytes above max.
func TooLarge(method string, n, max int) error {
	return transport.Errorf(transport.ResourceExhausted, "%s request of %d bytes, limit %d", method, n, max)
}
