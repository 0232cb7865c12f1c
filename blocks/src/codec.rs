//! Byte-level codecs shared by the block formats: LEB128 varints, zig-zag signed integers,
//! length-prefixed strings, and a bounds-checked reader that fails instead of panicking.

/// Appends `v` as an LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a signed integer as a zig-zag varint (small magnitudes stay small).
pub fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

/// Appends a length-prefixed UTF-8 string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends the bits of an f64, little-endian.
pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

/// Maps signed to unsigned so that small magnitudes give small varints.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads what the `put_*` functions wrote; every read checks bounds.
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, at: 0 }
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.at..]
    }

    /// Whether every byte was read.
    pub fn is_done(&self) -> bool {
        self.at == self.data.len()
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.at).ok_or("block ends early")?;
        self.at += 1;
        Ok(b)
    }

    /// An LEB128 varint.
    pub fn varint(&mut self) -> Result<u64, String> {
        if let Some(&b) = self.data.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(u64::from(b));
            }
        }
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    /// Skips `n` varints (counting their last bytes, without decoding them).
    pub fn skip_varints(&mut self, mut n: usize) -> Result<(), String> {
        const CHUNK: usize = 64;
        while n > 0 {
            let rest = &self.data[self.at..];
            if rest.is_empty() {
                return Err("block ends early".into());
            }
            let chunk = &rest[..rest.len().min(CHUNK)];
            let ends = chunk.iter().filter(|b| **b < 0x80).count();
            if ends < n {
                n -= ends;
                self.at += chunk.len();
                continue;
            }
            for (i, b) in chunk.iter().enumerate() {
                if *b < 0x80 {
                    n -= 1;
                    if n == 0 {
                        self.at += i + 1;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// A varint that counts items which each take at least one byte: refuses counts larger than
    /// the bytes left, so a damaged block cannot make the decoder allocate without bound.
    pub fn count(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        if n > (self.data.len() - self.at) as u64 {
            return Err(format!("count {n} exceeds the block"));
        }
        Ok(n as usize)
    }

    /// A zig-zag signed varint.
    pub fn signed(&mut self) -> Result<i64, String> {
        Ok(unzigzag(self.varint()?))
    }

    /// `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or("length overflows")?;
        let s = self.data.get(self.at..end).ok_or("block ends early")?;
        self.at = end;
        Ok(s)
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, String> {
        let len = self.varint()? as usize;
        std::str::from_utf8(self.bytes(len)?).map_err(|_| "string is not UTF-8".to_string())
    }

    /// An f64 written by [`put_f64`].
    pub fn f64(&mut self) -> Result<f64, String> {
        let b: [u8; 8] = self.bytes(8)?.try_into().map_err(|_| "f64")?;
        Ok(f64::from_bits(u64::from_le_bytes(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_varints_exactly() {
        let mut out = Vec::new();
        let values: Vec<u64> = (0..300u64).map(|i| i * i * 977).collect();
        values.iter().for_each(|v| put_varint(&mut out, *v));
        for n in [0, 1, 63, 64, 65, 299] {
            let mut r = Reader::new(&out);
            r.skip_varints(n).unwrap();
            assert_eq!(r.varint().unwrap(), values[n], "after skipping {n}");
        }
        let mut r = Reader::new(&out);
        assert!(r.skip_varints(301).is_err());
    }

    #[test]
    fn round_trips_and_refuses_truncation() {
        let mut out = Vec::new();
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            put_signed(&mut out, v);
        }
        put_str(&mut out, "ü-名");
        put_f64(&mut out, -0.125);
        let mut r = Reader::new(&out);
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.varint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(r.signed().unwrap(), v);
        }
        assert_eq!(r.str().unwrap(), "ü-名");
        assert_eq!(r.f64().unwrap(), -0.125);
        assert!(r.is_done());
        assert!(r.byte().is_err());
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        assert!(Reader::new(&[200, 1]).count().is_err());
    }
}
