//! A pickle virtual machine for the opcodes of protocols 0–5 that `torch.save` emits, with no
//! way to import or call anything: globals are resolved against the allow-list in
//! [`torch`](super::torch) and calls of them are interpreted there.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use super::torch::{Global, StorageRef, TensorRef};
use crate::{Error, Result};

/// Integers longer than this many bytes (LONG1/LONG4) are refused; torch writes at most 10
/// (the legacy magic number).
const MAX_LONG_BYTES: usize = 64;
/// Memo entries; each costs at least two bytes of pickle, so this only bites on abuse.
const MAX_MEMO: usize = 1 << 24;

/// A pickled value. Containers are shared (`Rc`), as in Python, so `GET` is O(1) and a list
/// appended to after it was memoised is the same list everywhere.
///
/// `Debug` is deliberately shallow ([`Value::describe`]): a hostile pickle can nest values a
/// million deep, and neither printing nor dropping one may recurse that deep.
#[derive(Clone)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// Little-endian two's complement, longer than 8 bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Items>),
    List(Rc<RefCell<Items>>),
    Dict(Rc<RefCell<Pairs>>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

/// The elements of a tuple or list. Dropping it frees nested containers iteratively.
#[derive(Default)]
pub(crate) struct Items(pub(crate) Vec<Value>);

/// The entries of a dict, in insertion order. Dropping it frees nested containers
/// iteratively.
#[derive(Default)]
pub(crate) struct Pairs(pub(crate) Vec<(Value, Value)>);

impl Drop for Items {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            teardown(std::mem::take(&mut self.0));
        }
    }
}

impl Drop for Pairs {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            teardown(
                std::mem::take(&mut self.0)
                    .into_iter()
                    .flat_map(|(k, v)| [k, v]),
            );
        }
    }
}

/// Frees a graph of values without recursion: the last owner of a container moves its
/// children onto a work list before the (now empty) container is dropped. (A pickle that
/// builds a reference cycle leaks that cycle, bounded by the pickle's size; torch never
/// writes one.)
fn teardown(values: impl IntoIterator<Item = Value>) {
    let mut work: Vec<Value> = values.into_iter().collect();
    while let Some(v) = work.pop() {
        match v {
            Value::List(l) => {
                if let Ok(cell) = Rc::try_unwrap(l) {
                    work.append(&mut cell.into_inner().0);
                }
            }
            Value::Dict(d) => {
                if let Ok(cell) = Rc::try_unwrap(d) {
                    for (k, v) in std::mem::take(&mut cell.into_inner().0) {
                        work.push(k);
                        work.push(v);
                    }
                }
            }
            Value::Tuple(t) => {
                if let Ok(mut items) = Rc::try_unwrap(t) {
                    work.append(&mut items.0);
                }
            }
            _ => {}
        }
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Value {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }

    /// A one-level description for error messages: scalars with their value (strings cut
    /// at 40 characters), containers by kind and length.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("bool {b}"),
            Value::Int(i) => format!("int {i}"),
            Value::BigInt(b) => format!("int of {} bytes", b.len()),
            Value::Float(x) => format!("float {x}"),
            Value::Str(s) => format!("str {:?}", s.chars().take(40).collect::<String>()),
            Value::Bytes(b) => format!("bytes of length {}", b.len()),
            Value::Tuple(t) => format!("tuple of {}", t.0.len()),
            Value::List(l) => format!("list of {}", l.borrow().0.len()),
            Value::Dict(d) => format!("dict of {}", d.borrow().0.len()),
            other => other.kind().into(),
        }
    }

    pub(crate) fn new_dict() -> Value {
        Value::Dict(Rc::new(RefCell::new(Pairs::default())))
    }

    fn new_list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(RefCell::new(Items(items))))
    }

    fn new_tuple(items: Vec<Value>) -> Value {
        Value::Tuple(Rc::new(Items(items)))
    }

    /// Elements of a tuple or list (handles to them: cheap).
    pub(crate) fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.0.clone()),
            Value::List(l) => Some(l.borrow().0.clone()),
            _ => None,
        }
    }
}

/// Turns a `persistent_id` into a value (a storage reference).
pub(crate) type PersistentLoad<'f> = dyn FnMut(Value) -> std::result::Result<Value, String> + 'f;

struct Machine<'d, 'p> {
    data: &'d [u8],
    pos: usize,
    /// Where `data` starts in the file, for error offsets.
    base: u64,
    path: &'p Path,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

/// Runs one pickle from the start of `data` to its `STOP`. Returns the value and the number of
/// bytes consumed. `base` is the offset of `data` in the file, used in error messages.
pub(crate) fn load(
    path: &Path,
    data: &[u8],
    base: u64,
    persistent: &mut PersistentLoad<'_>,
) -> Result<(Value, usize)> {
    let mut m = Machine {
        data,
        pos: 0,
        base,
        path,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let v = m.run(persistent)?;
    Ok((v, m.pos))
}

impl<'d> Machine<'d, '_> {
    fn err(&self, at: usize, what: impl Into<String>) -> Error {
        Error::Malformed {
            path: self.path.to_path_buf(),
            offset: self.base + at as u64,
            what: format!("pickle: {}", what.into()),
        }
    }

    fn take(&mut self, n: usize, at: usize) -> Result<&'d [u8]> {
        let data: &'d [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                self.err(
                    at,
                    format!("needs {n} bytes but the pickle ends at byte {}", data.len()),
                )
            })?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, at: usize) -> Result<u8> {
        Ok(self.take(1, at)?[0])
    }

    fn u16(&mut self, at: usize) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2, at)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self, at: usize) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, at)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, at: usize) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, at)?.try_into().expect("8 bytes"),
        ))
    }

    fn len_u64(&mut self, at: usize) -> Result<usize> {
        let n = self.u64(at)?;
        usize::try_from(n).map_err(|_| self.err(at, format!("length {n} is absurd")))
    }

    /// A text line (protocol 0 arguments), without its `\n`.
    fn line(&mut self, at: usize) -> Result<&'d str> {
        let data: &'d [u8] = self.data;
        let rest = &data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err(at, "unterminated text argument"))?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| self.err(at, "text argument is not UTF-8"))
    }

    fn pop(&mut self, at: usize) -> Result<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.err(at, "pop across a MARK"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err(at, "stack underflow"))
    }

    fn top(&mut self, at: usize) -> Result<&mut Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) || self.stack.is_empty() {
            return Err(self.err(at, "stack underflow (or stack top is a MARK)"));
        }
        Ok(self.stack.last_mut().expect("checked non-empty"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Value>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.err(at, "no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn memo_put(&mut self, idx: u32, at: usize) -> Result<()> {
        let v = self.top(at)?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&idx) {
            return Err(self.err(at, format!("memo grew past {MAX_MEMO} entries")));
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32, at: usize) -> Result<()> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(at, format!("memo key {idx} was never stored")))?;
        self.push(v);
        Ok(())
    }

    fn string(&self, bytes: &[u8], at: usize) -> Result<Value> {
        let s = std::str::from_utf8(bytes).map_err(|_| self.err(at, "string is not UTF-8"))?;
        Ok(Value::Str(s.into()))
    }

    fn long(&self, bytes: &[u8], at: usize) -> Result<Value> {
        if bytes.len() > MAX_LONG_BYTES {
            return Err(self.err(at, format!("integer of {} bytes is too large", bytes.len())));
        }
        if bytes.len() <= 8 {
            let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut buf = [fill; 8];
            buf[..bytes.len()].copy_from_slice(bytes);
            return Ok(Value::Int(i64::from_le_bytes(buf)));
        }
        Ok(Value::BigInt(bytes.into()))
    }

    fn set_items(&mut self, target: Value, items: Vec<Value>, at: usize) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err(at, "SETITEMS with an odd number of items"));
        }
        let Value::Dict(d) = target else {
            return Err(self.err(at, format!("SETITEM(S) on a {}", target.kind())));
        };
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.0.push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, target: &Value, mut items: Vec<Value>, at: usize) -> Result<()> {
        match target {
            Value::List(l) => {
                l.borrow_mut().0.append(&mut items);
                Ok(())
            }
            other => Err(self.err(at, format!("APPEND(S) on a {}", other.kind()))),
        }
    }

    fn run(&mut self, persistent: &mut PersistentLoad<'_>) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.u8(at)?;
            match op {
                // --- framing and protocol
                0x80 => {
                    let proto = self.u8(at)?;
                    if proto > 5 {
                        return Err(self.err(at, format!("unsupported pickle protocol {proto}")));
                    }
                }
                0x95 => {
                    self.u64(at)?; // FRAME: a length hint only
                }
                b'.' => {
                    let v = self.pop(at)?;
                    return Ok(v);
                }
                // --- stack manipulation
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let v = self.top(at)?.clone();
                    self.push(v);
                }
                // --- memo
                b'q' => {
                    let i = self.u8(at)?;
                    self.memo_put(i.into(), at)?;
                }
                b'r' => {
                    let i = self.u32(at)?;
                    self.memo_put(i, at)?;
                }
                b'p' => {
                    let i: u32 = self
                        .line(at)?
                        .trim()
                        .parse()
                        .map_err(|_| self.err(at, "PUT index is not a number"))?;
                    self.memo_put(i, at)?;
                }
                0x94 => {
                    let i =
                        u32::try_from(self.memo.len()).map_err(|_| self.err(at, "memo full"))?;
                    self.memo_put(i, at)?;
                }
                b'h' => {
                    let i = self.u8(at)?;
                    self.memo_get(i.into(), at)?;
                }
                b'j' => {
                    let i = self.u32(at)?;
                    self.memo_get(i, at)?;
                }
                b'g' => {
                    let i: u32 = self
                        .line(at)?
                        .trim()
                        .parse()
                        .map_err(|_| self.err(at, "GET index is not a number"))?;
                    self.memo_get(i, at)?;
                }
                // --- constants and numbers
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32(at)? as i32;
                    self.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8(at)?;
                    self.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = self.u16(at)?;
                    self.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = self.u8(at)? as usize;
                    let bytes = self.take(n, at)?.to_vec();
                    let v = self.long(&bytes, at)?;
                    self.push(v);
                }
                0x8b => {
                    let n = self.u32(at)? as usize;
                    if n > MAX_LONG_BYTES {
                        return Err(self.err(at, format!("integer of {n} bytes is too large")));
                    }
                    let bytes = self.take(n, at)?.to_vec();
                    let v = self.long(&bytes, at)?;
                    self.push(v);
                }
                b'I' | b'L' => {
                    let line = self.line(at)?.trim().trim_end_matches('L').to_owned();
                    let v =
                        match line.as_str() {
                            "00" => Value::Bool(false),
                            "01" => Value::Bool(true),
                            s => Value::Int(s.parse().map_err(|_| {
                                self.err(at, format!("integer `{s}` is not an i64"))
                            })?),
                        };
                    self.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8, at)?.try_into().expect("8 bytes"));
                    self.push(Value::Float(v));
                }
                b'F' => {
                    let line = self.line(at)?.trim().to_owned();
                    let v = line
                        .parse()
                        .map_err(|_| self.err(at, format!("float `{line}` is malformed")))?;
                    self.push(Value::Float(v));
                }
                // --- strings and bytes
                b'X' => {
                    let n = self.u32(at)? as usize;
                    let b = self.take(n, at)?;
                    let v = self.string(b, at)?;
                    self.push(v);
                }
                0x8c => {
                    let n = self.u8(at)? as usize;
                    let b = self.take(n, at)?;
                    let v = self.string(b, at)?;
                    self.push(v);
                }
                0x8d => {
                    let n = self.len_u64(at)?;
                    let b = self.take(n, at)?;
                    let v = self.string(b, at)?;
                    self.push(v);
                }
                b'V' => {
                    let line = self.line(at)?.to_owned();
                    self.push(Value::Str(line.into()));
                }
                // Python 2 `str`: torch's legacy files use them for keys; read as latin-1.
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.u32(at)? as usize
                    } else {
                        self.u8(at)? as usize
                    };
                    let s: String = self.take(n, at)?.iter().map(|&b| b as char).collect();
                    self.push(Value::Str(s.into()));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32(at)? as usize,
                        b'C' => self.u8(at)? as usize,
                        _ => self.len_u64(at)?,
                    };
                    let b: Rc<[u8]> = self.take(n, at)?.into();
                    self.push(Value::Bytes(b));
                }
                // --- containers
                b')' => self.push(Value::new_tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::new_tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n
                        || self.marks.last().is_some_and(|&m| m > self.stack.len() - n)
                    {
                        return Err(self.err(at, "stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Value::new_tuple(items));
                }
                b']' => self.push(Value::new_list(Vec::new())),
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::new_list(items));
                }
                // Sets become lists: nothing torch stores in a state dict is a set.
                0x8f => self.push(Value::new_list(Vec::new())),
                0x91 => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::new_list(items));
                }
                b'}' => self.push(Value::new_dict()),
                b'd' => {
                    let items = self.pop_mark(at)?;
                    let d = Value::new_dict();
                    self.set_items(d.clone(), items, at)?;
                    self.push(d);
                }
                b'a' => {
                    let v = self.pop(at)?;
                    let target = self.top(at)?.clone();
                    self.append(&target, vec![v], at)?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark(at)?;
                    let target = self.top(at)?.clone();
                    self.append(&target, items, at)?;
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let target = self.top(at)?.clone();
                    self.set_items(target, vec![k, v], at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    let target = self.top(at)?.clone();
                    self.set_items(target, items, at)?;
                }
                // --- globals and calls: allow-list only, interpreted, never executed
                b'c' => {
                    let module = self.line(at)?.to_owned();
                    let name = self.line(at)?.to_owned();
                    let g = self.global(&module, &name, at)?;
                    self.push(Value::Global(g));
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(self.err(at, "STACK_GLOBAL needs two strings"));
                    };
                    let g = self.global(module, name, at)?;
                    self.push(Value::Global(g));
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    let Value::Global(g) = func else {
                        return Err(self.err(
                            at,
                            format!("REDUCE calls a {}, not an allowed global", func.kind()),
                        ));
                    };
                    let Value::Tuple(args) = args else {
                        return Err(self.err(
                            at,
                            format!("REDUCE arguments are a {}, not a tuple", args.kind()),
                        ));
                    };
                    let v = g.call(&args.0).map_err(|e| self.err(at, e))?;
                    self.push(v);
                }
                0x81 => {
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    match (&cls, &args) {
                        (Value::Global(Global::OrderedDict), Value::Tuple(a)) if a.0.is_empty() => {
                            self.push(Value::new_dict())
                        }
                        _ => {
                            return Err(
                                self.err(at, format!("NEWOBJ of a {} is not allowed", cls.kind()))
                            );
                        }
                    }
                }
                b'b' => {
                    // BUILD sets state (attributes such as a state dict's `_metadata`): ignored.
                    self.pop(at)?;
                    self.top(at)?;
                }
                b'Q' => {
                    let pid = self.pop(at)?;
                    let v = persistent(pid).map_err(|e| self.err(at, e))?;
                    self.push(v);
                }
                b'P' => {
                    let line = self.line(at)?.to_owned();
                    let v = persistent(Value::Str(line.into())).map_err(|e| self.err(at, e))?;
                    self.push(v);
                }
                other => {
                    let name = match other {
                        b'i' => "INST",
                        b'o' => "OBJ",
                        0x82..=0x84 => "EXT",
                        0x92 => "NEWOBJ_EX",
                        0x97 => "NEXT_BUFFER",
                        0x98 => "READONLY_BUFFER",
                        b'S' => "STRING",
                        _ => "unknown",
                    };
                    return Err(self.err(
                        at,
                        format!("opcode 0x{other:02x} ({name}) is not supported"),
                    ));
                }
            }
        }
    }

    fn global(&self, module: &str, name: &str, at: usize) -> Result<Global> {
        Global::resolve(module, name).ok_or_else(|| Error::ForbiddenGlobal {
            path: self.path.to_path_buf(),
            offset: self.base + at as u64,
            module: module.to_owned(),
            name: name.to_owned(),
        })
    }
}
