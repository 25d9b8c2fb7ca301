//! A complete ZeroMQ message: one or more parts, in one buffer.

/// One message as the peer sent it, all its parts in one contiguous buffer.
///
/// The common case, one part (PHP's `send($json)`), costs one allocation
/// and [`Message::into_last`] hands that buffer over without copying. Each
/// payload byte was copied once, from the caller's input straight into
/// this buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    data: Vec<u8>,
    /// Where each part after the first starts in `data` (ascending).
    starts: Vec<usize>,
}

impl Message {
    /// A message of these parts (for tests, and anyone building one).
    pub fn from_parts<P: AsRef<[u8]>>(parts: &[P]) -> Message {
        let mut message = Message::default();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                message.begin_part();
            }
            message.data.extend_from_slice(part.as_ref());
        }
        message
    }

    /// How many parts (at least 1).
    pub fn part_count(&self) -> usize {
        self.starts.len() + 1
    }

    /// Part `i` (from 0), if there is one.
    pub fn part(&self, i: usize) -> Option<&[u8]> {
        let start = match i {
            0 => 0,
            _ => *self.starts.get(i - 1)?,
        };
        let end = self.starts.get(i).copied().unwrap_or(self.data.len());
        self.data.get(start..end)
    }

    /// The parts, in order.
    pub fn parts(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        (0..self.part_count()).map(|i| self.part(i).unwrap_or_default())
    }

    /// The last part: the payload, for a PHP `send($json)`.
    pub fn last(&self) -> &[u8] {
        let start = self.starts.last().copied().unwrap_or(0);
        self.data.get(start..).unwrap_or_default()
    }

    /// The last part, owned; no copy for a one-part message.
    pub fn into_last(mut self) -> Vec<u8> {
        match self.starts.last() {
            None => self.data,
            Some(&start) => self.data.split_off(start),
        }
    }

    /// Every part as a vector of its own (copies them).
    pub fn into_parts(self) -> Vec<Vec<u8>> {
        self.parts().map(<[u8]>::to_vec).collect()
    }

    /// The bytes of all parts together.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// Starts a new (not first) part at the end of the data.
    pub(super) fn begin_part(&mut self) {
        self.starts.push(self.data.len());
    }

    /// Appends to the part being received.
    pub(super) fn extend(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }
}
