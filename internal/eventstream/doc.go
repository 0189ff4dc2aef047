// Package eventstream owns the AWS event-stream binary framing
// (application/vnd.amazon.eventstream) and the two events Lambda's
// InvokeWithResponseStream sends in it: PayloadChunk, carrying bytes of the
// response, and InvokeComplete, ending the stream with an optional error.
//
// A message is a 12-byte prelude (total length, headers length, CRC-32 of
// those eight bytes, all big endian), the headers, the payload, and a CRC-32
// of everything before it. Headers here are string-valued (type 7), which is
// all Lambda's events use.
package eventstream
