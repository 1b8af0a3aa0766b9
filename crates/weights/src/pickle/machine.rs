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
/// The opcodes this machine knows, by their names in CPython's `pickletools` (protocols 0–5
/// as `torch.save` writes them). Any other byte is an error naming its offset.
mod op {
    pub(super) const PROTO: u8 = 0x80;
    pub(super) const FRAME: u8 = 0x95;
    pub(super) const STOP: u8 = b'.';
    pub(super) const MARK: u8 = b'(';
    pub(super) const POP: u8 = b'0';
    pub(super) const POP_MARK: u8 = b'1';
    pub(super) const DUP: u8 = b'2';
    pub(super) const BINPUT: u8 = b'q';
    pub(super) const LONG_BINPUT: u8 = b'r';
    pub(super) const PUT: u8 = b'p';
    pub(super) const MEMOIZE: u8 = 0x94;
    pub(super) const BINGET: u8 = b'h';
    pub(super) const LONG_BINGET: u8 = b'j';
    pub(super) const GET: u8 = b'g';
    pub(super) const NONE: u8 = b'N';
    pub(super) const NEWTRUE: u8 = 0x88;
    pub(super) const NEWFALSE: u8 = 0x89;
    pub(super) const BININT: u8 = b'J';
    pub(super) const BININT1: u8 = b'K';
    pub(super) const BININT2: u8 = b'M';
    pub(super) const LONG1: u8 = 0x8a;
    pub(super) const LONG4: u8 = 0x8b;
    pub(super) const INT: u8 = b'I';
    pub(super) const LONG: u8 = b'L';
    pub(super) const BINFLOAT: u8 = b'G';
    pub(super) const FLOAT: u8 = b'F';
    pub(super) const BINUNICODE: u8 = b'X';
    pub(super) const SHORT_BINUNICODE: u8 = 0x8c;
    pub(super) const BINUNICODE8: u8 = 0x8d;
    pub(super) const UNICODE: u8 = b'V';
    pub(super) const BINSTRING: u8 = b'T';
    pub(super) const SHORT_BINSTRING: u8 = b'U';
    pub(super) const BINBYTES: u8 = b'B';
    pub(super) const SHORT_BINBYTES: u8 = b'C';
    pub(super) const BINBYTES8: u8 = 0x8e;
    pub(super) const BYTEARRAY8: u8 = 0x96;
    pub(super) const EMPTY_TUPLE: u8 = b')';
    pub(super) const TUPLE: u8 = b't';
    pub(super) const TUPLE1: u8 = 0x85;
    pub(super) const TUPLE3: u8 = 0x87;
    pub(super) const EMPTY_LIST: u8 = b']';
    pub(super) const LIST: u8 = b'l';
    pub(super) const EMPTY_SET: u8 = 0x8f;
    pub(super) const FROZENSET: u8 = 0x91;
    pub(super) const EMPTY_DICT: u8 = b'}';
    pub(super) const DICT: u8 = b'd';
    pub(super) const APPEND: u8 = b'a';
    pub(super) const APPENDS: u8 = b'e';
    pub(super) const ADDITEMS: u8 = 0x90;
    pub(super) const SETITEM: u8 = b's';
    pub(super) const SETITEMS: u8 = b'u';
    pub(super) const GLOBAL: u8 = b'c';
    pub(super) const STACK_GLOBAL: u8 = 0x93;
    pub(super) const REDUCE: u8 = b'R';
    pub(super) const NEWOBJ: u8 = 0x81;
    pub(super) const BUILD: u8 = b'b';
    pub(super) const BINPERSID: u8 = b'Q';
    pub(super) const PERSID: u8 = b'P';
}

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
                op::PROTO => {
                    let proto = self.u8(at)?;
                    if proto > 5 {
                        return Err(self.err(at, format!("unsupported pickle protocol {proto}")));
                    }
                }
                op::FRAME => {
                    self.u64(at)?; // FRAME: a length hint only
                }
                op::STOP => {
                    let v = self.pop(at)?;
                    return Ok(v);
                }
                // --- stack manipulation
                op::MARK => self.marks.push(self.stack.len()),
                op::POP => {
                    self.pop(at)?;
                }
                op::POP_MARK => {
                    self.pop_mark(at)?;
                }
                op::DUP => {
                    let v = self.top(at)?.clone();
                    self.push(v);
                }
                // --- memo
                op::BINPUT => {
                    let i = self.u8(at)?;
                    self.memo_put(i.into(), at)?;
                }
                op::LONG_BINPUT => {
                    let i = self.u32(at)?;
                    self.memo_put(i, at)?;
                }
                op::PUT => {
                    let i: u32 = self
                        .line(at)?
                        .trim()
                        .parse()
                        .map_err(|_| self.err(at, "PUT index is not a number"))?;
                    self.memo_put(i, at)?;
                }
                op::MEMOIZE => {
                    let i =
                        u32::try_from(self.memo.len()).map_err(|_| self.err(at, "memo full"))?;
                    self.memo_put(i, at)?;
                }
                op::BINGET => {
                    let i = self.u8(at)?;
                    self.memo_get(i.into(), at)?;
                }
                op::LONG_BINGET => {
                    let i = self.u32(at)?;
                    self.memo_get(i, at)?;
                }
                op::GET => {
                    let i: u32 = self
                        .line(at)?
                        .trim()
                        .parse()
                        .map_err(|_| self.err(at, "GET index is not a number"))?;
                    self.memo_get(i, at)?;
                }
                // --- constants and numbers
                op::NONE => self.push(Value::None),
                op::NEWTRUE => self.push(Value::Bool(true)),
                op::NEWFALSE => self.push(Value::Bool(false)),
                op::BININT => {
                    let v = self.u32(at)? as i32;
                    self.push(Value::Int(v.into()));
                }
                op::BININT1 => {
                    let v = self.u8(at)?;
                    self.push(Value::Int(v.into()));
                }
                op::BININT2 => {
                    let v = self.u16(at)?;
                    self.push(Value::Int(v.into()));
                }
                op::LONG1 => {
                    let n = self.u8(at)? as usize;
                    let bytes = self.take(n, at)?.to_vec();
                    let v = self.long(&bytes, at)?;
                    self.push(v);
                }
                op::LONG4 => {
                    let n = self.u32(at)? as usize;
                    if n > MAX_LONG_BYTES {
                        return Err(self.err(at, format!("integer of {n} bytes is too large")));
                    }
                    let bytes = self.take(n, at)?.to_vec();
                    let v = self.long(&bytes, at)?;
                    self.push(v);
                }
                op::INT | op::LONG => {
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
                op::BINFLOAT => {
                    let v = f64::from_be_bytes(self.take(8, at)?.try_into().expect("8 bytes"));
                    self.push(Value::Float(v));
                }
                op::FLOAT => {
                    let line = self.line(at)?.trim().to_owned();
                    let v = line
                        .parse()
                        .map_err(|_| self.err(at, format!("float `{line}` is malformed")))?;
                    self.push(Value::Float(v));
                }
                // --- strings and bytes
                op::BINUNICODE => {
                    let n = self.u32(at)? as usize;
                    let b = self.take(n, at)?;
                    let v = self.string(b, at)?;
                    self.push(v);
                }
                op::SHORT_BINUNICODE => {
                    let n = self.u8(at)? as usize;
                    let b = self.take(n, at)?;
                    let v = self.string(b, at)?;
                    self.push(v);
                }
                op::BINUNICODE8 => {
                    let n = self.len_u64(at)?;
                    let b = self.take(n, at)?;
                    let v = self.string(b, at)?;
                    self.push(v);
                }
                op::UNICODE => {
                    let line = self.line(at)?.to_owned();
                    self.push(Value::Str(line.into()));
                }
                // Python 2 `str`: torch's legacy files use them for keys; read as latin-1.
                op::BINSTRING | op::SHORT_BINSTRING => {
                    let n = if op == op::BINSTRING {
                        self.u32(at)? as usize
                    } else {
                        self.u8(at)? as usize
                    };
                    let s: String = self.take(n, at)?.iter().map(|&b| b as char).collect();
                    self.push(Value::Str(s.into()));
                }
                op::BINBYTES | op::SHORT_BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = match op {
                        op::BINBYTES => self.u32(at)? as usize,
                        op::SHORT_BINBYTES => self.u8(at)? as usize,
                        _ => self.len_u64(at)?,
                    };
                    let b: Rc<[u8]> = self.take(n, at)?.into();
                    self.push(Value::Bytes(b));
                }
                // --- containers
                op::EMPTY_TUPLE => self.push(Value::new_tuple(Vec::new())),
                op::TUPLE => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::new_tuple(items));
                }
                op::TUPLE1..=op::TUPLE3 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n
                        || self.marks.last().is_some_and(|&m| m > self.stack.len() - n)
                    {
                        return Err(self.err(at, "stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Value::new_tuple(items));
                }
                op::EMPTY_LIST => self.push(Value::new_list(Vec::new())),
                op::LIST => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::new_list(items));
                }
                // Sets become lists: nothing torch stores in a state dict is a set.
                op::EMPTY_SET => self.push(Value::new_list(Vec::new())),
                op::FROZENSET => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::new_list(items));
                }
                op::EMPTY_DICT => self.push(Value::new_dict()),
                op::DICT => {
                    let items = self.pop_mark(at)?;
                    let d = Value::new_dict();
                    self.set_items(d.clone(), items, at)?;
                    self.push(d);
                }
                op::APPEND => {
                    let v = self.pop(at)?;
                    let target = self.top(at)?.clone();
                    self.append(&target, vec![v], at)?;
                }
                op::APPENDS | op::ADDITEMS => {
                    let items = self.pop_mark(at)?;
                    let target = self.top(at)?.clone();
                    self.append(&target, items, at)?;
                }
                op::SETITEM => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let target = self.top(at)?.clone();
                    self.set_items(target, vec![k, v], at)?;
                }
                op::SETITEMS => {
                    let items = self.pop_mark(at)?;
                    let target = self.top(at)?.clone();
                    self.set_items(target, items, at)?;
                }
                // --- globals and calls: allow-list only, interpreted, never executed
                op::GLOBAL => {
                    let module = self.line(at)?.to_owned();
                    let name = self.line(at)?.to_owned();
                    let g = self.global(&module, &name, at)?;
                    self.push(Value::Global(g));
                }
                op::STACK_GLOBAL => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(self.err(at, "STACK_GLOBAL needs two strings"));
                    };
                    let g = self.global(module, name, at)?;
                    self.push(Value::Global(g));
                }
                op::REDUCE => {
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
                op::NEWOBJ => {
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
                op::BUILD => {
                    // BUILD sets state (attributes such as a state dict's `_metadata`): ignored.
                    self.pop(at)?;
                    self.top(at)?;
                }
                op::BINPERSID => {
                    let pid = self.pop(at)?;
                    let v = persistent(pid).map_err(|e| self.err(at, e))?;
                    self.push(v);
                }
                op::PERSID => {
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
