// gen_bpe_ref.js: reference encodings for test_bpe_parity from the npm package gpt-3-encoder.
//
//   node gen_bpe_ref.js MODULE_DIR IN OUT
//
// IN holds records (uint32 little-endian byte length, then the bytes). Each record is decoded
// with TextDecoder (WHATWG UTF-8: invalid sequences become U+FFFD), encoded with the package's
// encode(), and decoded back with its decode(). OUT gets, per record: uint32 n, n int32 ids (-1
// where the package yields no id), uint32 byte length and the UTF-8 bytes of decode(ids).
const fs = require('fs');
const path = require('path');
const { encode, decode } = require(path.resolve(process.argv[2]));
const inp = fs.readFileSync(process.argv[3]);
const td = new TextDecoder('utf-8');
const chunks = [];
for (let off = 0; off < inp.length;) {
  const n = inp.readUInt32LE(off);
  off += 4;
  const text = td.decode(inp.subarray(off, off + n));
  off += n;
  const ids = encode(text);
  const head = Buffer.alloc(4 + 4 * ids.length);
  head.writeUInt32LE(ids.length, 0);
  ids.forEach((x, i) => head.writeInt32LE(Number.isInteger(x) ? x : -1, 4 + 4 * i));
  const dec = Buffer.from(decode(ids.filter(x => Number.isInteger(x))), 'utf8');
  const dl = Buffer.alloc(4);
  dl.writeUInt32LE(dec.length, 0);
  chunks.push(head, dl, dec);
}
fs.writeFileSync(process.argv[4], Buffer.concat(chunks));
