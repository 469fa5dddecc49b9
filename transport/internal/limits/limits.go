// Package limits holds the checks both servers run on a request's encoded
// bytes before decoding them.
package limits

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/commitlog-go/commitlog/transport"
)

// batchRecordsField is log.v1.ProduceBatchRequest's repeated records field;
// recordHeadersField is log.v1.Record's repeated headers field.
const (
	batchRecordsField  protowire.Number = 1
	recordHeadersField protowire.Number = 6
)

// CheckBatchProto returns a ResourceExhausted error when the binary
// ProduceBatchRequest in data holds more than max records, or a record of
// more than maxHeaders headers. It reads only the field headers of the
// request and of its records and allocates nothing, so a 4 MiB request of
// millions of empty records, or of one record of millions of empty headers
// (each decoded header costs some 100 bytes), is refused for the cost of a
// scan. Malformed bytes are left to the decoder.
func CheckBatchProto(data []byte, max, maxHeaders int) error {
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
			if typ == protowire.BytesType {
				if rec, m := protowire.ConsumeBytes(data[tagLen:]); m >= 0 && countField(rec, recordHeadersField, maxHeaders) > maxHeaders {
					return tooManyHeaders(maxHeaders)
				}
			}
		}
		data = data[tagLen+valLen:]
	}
	return nil
}

// countField counts the occurrences of field num in the message msg, up to
// one more than max. Malformed bytes end the count.
func countField(msg []byte, num protowire.Number, max int) int {
	n := 0
	for len(msg) > 0 && n <= max {
		f, typ, tagLen := protowire.ConsumeTag(msg)
		if tagLen < 0 {
			return n
		}
		valLen := protowire.ConsumeFieldValue(f, typ, msg[tagLen:])
		if valLen < 0 {
			return n
		}
		if f == num {
			n++
		}
		msg = msg[tagLen+valLen:]
	}
	return n
}

// CheckBatchJSON is CheckBatchProto for the JSON form. It counts the objects
// directly inside an array that is a member of the request object: the
// records (the request's only repeated message field), and nothing else a
// valid request holds (the producer is no array's element, braces in strings
// are skipped); and, in each record, the objects directly inside an array
// that is a member of the record: its headers (a record's only repeated
// field). It scans the bytes once and allocates nothing; malformed bytes are
// left to the decoder.
func CheckBatchJSON(data []byte, max, maxHeaders int) error {
	n, headers := 0, 0
	inArray := false   // the container at depth 2 is an array
	inRecords := false // the container at depth 3 is a record (an object in that array)
	inHeaders := false // the container at depth 4 is an array in a record
	return scanJSON(data, func(depth int, c byte) error {
		switch depth {
		case 2:
			inArray = c == '['
		case 3:
			inRecords = inArray && c == '{'
			if inRecords {
				headers = 0
				if n++; n > max {
					return tooMany(max)
				}
			}
		case 4:
			inHeaders = inRecords && c == '['
		case 5:
			if inHeaders && c == '{' {
				if headers++; headers > maxHeaders {
					return tooManyHeaders(maxHeaders)
				}
			}
		}
		return nil
	})
}

// scanJSON calls open with the depth (1 for the outermost) and the bracket of every object
// or array that opens in data, outside strings, and stops at the first error open returns.
// It allocates nothing; malformed bytes are scanned as they come (the decoder judges them).
func scanJSON(data []byte, open func(depth int, c byte) error) error {
	depth := 0
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
			if err := open(depth, data[i]); err != nil {
				return err
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// requestRecordField is log.v1.ProduceRequest's record field.
const requestRecordField protowire.Number = 1

// CheckRecordProto returns a ResourceExhausted error when the binary
// ProduceRequest (a Produce, or a ProduceStream message) in data holds a
// record of more than maxHeaders headers, as CheckBatchProto does for a
// batch's records. It allocates nothing; malformed bytes are left to the
// decoder.
func CheckRecordProto(data []byte, maxHeaders int) error {
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
		// A message field repeated on the wire is merged: the record's
		// headers are those of every occurrence.
		if num == requestRecordField && typ == protowire.BytesType {
			rec, _ := protowire.ConsumeBytes(data[tagLen:])
			if n += countField(rec, recordHeadersField, maxHeaders-n); n > maxHeaders {
				return tooManyHeaders(maxHeaders)
			}
		}
		data = data[tagLen+valLen:]
	}
	return nil
}

// CheckRecordJSON is CheckRecordProto for the JSON form. It counts the
// objects directly inside an array that is a member of an object that is a
// member of the request object: the record's headers (the record is the
// request's only member that holds an array). It scans the bytes once and
// allocates nothing; malformed bytes are left to the decoder.
func CheckRecordJSON(data []byte, maxHeaders int) error {
	n := 0
	inObject := false // the container at depth 2 is an object
	inArray := false  // the container at depth 3 is an array in that object
	return scanJSON(data, func(depth int, c byte) error {
		switch depth {
		case 2:
			inObject = c == '{'
		case 3:
			inArray = inObject && c == '['
		case 4:
			if inArray && c == '{' {
				if n++; n > maxHeaders {
					return tooManyHeaders(maxHeaders)
				}
			}
		}
		return nil
	})
}

func tooMany(max int) error {
	return transport.Errorf(transport.ResourceExhausted, "a ProduceBatch may carry at most %d records", max)
}

func tooManyHeaders(max int) error {
	return transport.Errorf(transport.ResourceExhausted, "a record may carry at most %d headers", max)
}

// TooLarge is the error for a message of n bytes above max.
func TooLarge(method string, n, max int) error {
	return transport.Errorf(transport.ResourceExhausted, "%s request of %d bytes, limit %d", method, n, max)
}
