#include "engine/io/pickle_reader.h"

#include <cstring>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>

#include "common/error.h"
#include "engine/io/json.h"

namespace vitmsn {
namespace {

// The globals a state dict may reference, each given a fixed meaning here (nothing is looked up).
enum class Global { OrderedDict, RebuildTensorV2, RebuildParameter, StorageType };

struct AllowedGlobal {
  const char* module;
  const char* name;
  Global kind;
  DType dtype;  // for StorageType
};

constexpr AllowedGlobal kAllowed[] = {
    {"collections", "OrderedDict", Global::OrderedDict, DType::U8},
    {"torch._utils", "_rebuild_tensor_v2", Global::RebuildTensorV2, DType::U8},
    {"torch._utils", "_rebuild_parameter", Global::RebuildParameter, DType::U8},
    {"torch", "FloatStorage", Global::StorageType, DType::F32},
    {"torch", "HalfStorage", Global::StorageType, DType::F16},
    {"torch", "BFloat16Storage", Global::StorageType, DType::BF16},
    {"torch", "DoubleStorage", Global::StorageType, DType::F64},
    {"torch", "LongStorage", Global::StorageType, DType::I64},
    {"torch", "IntStorage", Global::StorageType, DType::I32},
    {"torch", "ShortStorage", Global::StorageType, DType::I16},
    {"torch", "CharStorage", Global::StorageType, DType::I8},
    {"torch", "ByteStorage", Global::StorageType, DType::U8},
    {"torch", "BoolStorage", Global::StorageType, DType::BOOL},
};

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::Str:
      return "str";
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Global:
      return "global";
    case Kind::Storage:
      return "storage";
    case Kind::Tensor:
      return "tensor";
  }
  return "?";
}

// "a str", "an int": for messages.
std::string article(Kind k) { return std::string(k == Kind::Int ? "an " : "a ") + kind_name(k); }

struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;                               // Int, Bool
  std::string s;                               // Str; Global: "module.name"
  std::vector<Obj*> items;                     // Tuple, List
  std::vector<std::pair<Obj*, Obj*>> entries;  // Dict (insertion order)
  const AllowedGlobal* global = nullptr;       // Global
  PickledTensor tensor;                        // Storage (key, dtype, numel) and Tensor
};

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& label)
      : p_(data), end_(data + size), begin_(data), label_(label) {}

  Obj* run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(codes::kCheckpointInvalid, label_ + ": " + what + " (at byte " + std::to_string(op_pos_) + ")");
  }

  Obj* make(Kind k) {
    if (arena_.size() >= kMaxPickleObjects) fail("more than " + std::to_string(kMaxPickleObjects) + " objects");
    arena_.emplace_back();
    arena_.back().kind = k;
    return &arena_.back();
  }
  Obj* make_int(int64_t v) {
    Obj* o = make(Kind::Int);
    o->i = v;
    return o;
  }

  const uint8_t* take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) fail("pickle ends in the middle of an opcode (truncated?)");
    const uint8_t* q = p_;
    p_ += n;
    return q;
  }
  uint64_t le(size_t n) {
    const uint8_t* q = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(q[k]) << (8 * k);
    return v;
  }
  std::string line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', static_cast<size_t>(end_ - p_)));
    if (nl == nullptr) fail("unterminated text argument");
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(nl - p_));
    p_ = nl + 1;
    return s;
  }
  std::string bytes_of(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) fail("string of " + std::to_string(n) + " bytes runs past the end");
    const uint8_t* q = take(static_cast<size_t>(n));
    return std::string(reinterpret_cast<const char*>(q), static_cast<size_t>(n));
  }

  Obj* pop() {
    if (stack_.size() <= mark_floor()) fail("stack underflow");
    Obj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj* top() {
    if (stack_.size() <= mark_floor()) fail("stack underflow");
    return stack_.back();
  }
  size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Obj*> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj*> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  void push(Obj* o) { stack_.push_back(o); }

  Obj* tuple(std::vector<Obj*> items) {
    Obj* t = make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }

  Obj* global(const std::string& module, const std::string& name);
  Obj* persistent_load(Obj* pid);
  Obj* reduce(Obj* callable, Obj* args);
  void set_items(Obj* dict, const std::vector<Obj*>& kv);
  void memo_put(uint64_t idx) { memo_[idx] = top(); }
  Obj* memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo key " + std::to_string(idx) + " was never stored");
    return it->second;
  }
  int64_t as_int(Obj* o, const char* what) {
    if (o->kind != Kind::Int) fail(std::string(what) + " is " + article(o->kind) + ", expected an int");
    return o->i;
  }
  std::vector<int64_t> int_tuple(Obj* o, const char* what) {
    if (o->kind != Kind::Tuple) fail(std::string(what) + " is " + article(o->kind) + ", expected a tuple of ints");
    std::vector<int64_t> v;
    for (Obj* e : o->items) v.push_back(as_int(e, what));
    return v;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
  size_t op_pos_ = 0;
  std::string label_;
  std::deque<Obj> arena_;  // deque: stable addresses, flat destruction
  std::vector<Obj*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Obj*> memo_;
};

Obj* Unpickler::global(const std::string& module, const std::string& name) {
  for (const AllowedGlobal& g : kAllowed) {
    if (module == g.module && name == g.name) {
      Obj* o = make(Kind::Global);
      o->global = &g;
      o->s = module + "." + name;
      return o;
    }
  }
  // Other torch rebuild functions are real tensor kinds (quantized, sparse, dtypes without a typed
  // storage class such as float8 or uint16 via _rebuild_tensor_v3) that a ViT state dict does not use.
  if (module == "torch._utils" && name.rfind("_rebuild_", 0) == 0) {
    fail("tensor kind '" + printable(module) + "." + printable(name) +
         "' is not supported (only dense float/int tensors via _rebuild_tensor_v2; nothing was executed)");
  }
  fail("refusing global '" + printable(module) + "." + printable(name) +
       "': a state dict only needs collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
       "torch._utils._rebuild_parameter and torch.*Storage (is this file a state dict? nothing was executed)");
}

// ('storage', <storage type>, key, location, numel): how torch.save refers to a storage held in the
// archive's data/<key> entry.
Obj* Unpickler::persistent_load(Obj* pid) {
  if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::Str ||
      pid->items[0]->s != "storage") {
    fail("persistent id is not a ('storage', type, key, location, numel) tuple");
  }
  Obj* type = pid->items[1];
  if (type->kind != Kind::Global || type->global->kind != Global::StorageType)
    fail("persistent id's storage type is not a torch.*Storage");
  Obj* key = pid->items[2];
  if (key->kind != Kind::Str) fail("persistent id's key is " + article(key->kind) + ", expected a str");
  const int64_t numel = as_int(pid->items[4], "persistent id's numel");
  if (numel < 0) fail("storage '" + printable(key->s) + "' has a negative size");
  Obj* s = make(Kind::Storage);
  s->tensor.storage_key = key->s;
  s->tensor.dtype = type->global->dtype;
  s->tensor.storage_numel = numel;
  return s;
}

Obj* Unpickler::reduce(Obj* callable, Obj* args) {
  if (callable->kind != Kind::Global) fail("REDUCE on " + article(callable->kind) + " is not allowed");
  if (args->kind != Kind::Tuple) fail("REDUCE arguments are " + article(args->kind) + ", expected a tuple");
  const std::vector<Obj*>& a = args->items;
  switch (callable->global->kind) {
    case Global::OrderedDict:
      if (!a.empty()) fail("collections.OrderedDict called with arguments; only OrderedDict() is allowed");
      return make(Kind::Dict);
    case Global::RebuildTensorV2: {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() < 6 || a.size() > 7)
        fail("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
      if (a[0]->kind != Kind::Storage)
        fail("_rebuild_tensor_v2's first argument is " + article(a[0]->kind) + ", expected a storage");
      Obj* t = make(Kind::Tensor);
      t->tensor = a[0]->tensor;
      t->tensor.offset = as_int(a[1], "storage_offset");
      t->tensor.size = int_tuple(a[2], "size");
      t->tensor.stride = int_tuple(a[3], "stride");
      return t;
    }
    case Global::RebuildParameter:
      // (data, requires_grad, backward_hooks): an nn.Parameter is its tensor for our purposes.
      if (a.size() != 3 || a[0]->kind != Kind::Tensor)
        fail("_rebuild_parameter expects (tensor, requires_grad, hooks)");
      return a[0];
    case Global::StorageType:
      break;
  }
  fail("REDUCE on '" + callable->s + "' is not allowed (nothing was executed)");
}

void Unpickler::set_items(Obj* dict, const std::vector<Obj*>& kv) {
  if (dict->kind != Kind::Dict) fail("SETITEM(S) on " + article(dict->kind) + ", expected a dict");
  if (kv.size() % 2 != 0) fail("SETITEMS with an odd number of items");
  for (size_t k = 0; k < kv.size(); k += 2) dict->entries.emplace_back(kv[k], kv[k + 1]);
}

Obj* Unpickler::run() {
  while (true) {
    op_pos_ = static_cast<size_t>(p_ - begin_);
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t v = le(1);
        if (v < 2 || v > 5) fail("pickle protocol " + std::to_string(v) + " is not supported (2 to 5)");
        break;
      }
      case 0x95:
        le(8);
        break;     // FRAME: a length hint only
      case '.': {  // STOP
        Obj* result = pop();
        return result;
      }
      case '(':
        marks_.push_back(stack_.size());
        break;  // MARK
      case '0':
        pop();
        break;  // POP
      case '1':
        pop_mark();
        break;  // POP_MARK
      case '2':
        push(top());
        break;  // DUP
      case 'N':
        push(make(Kind::None));
        break;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Obj* b = make(Kind::Bool);
        b->i = op == 0x88;
        push(b);
        break;
      }
      case 'J':
        push(make_int(static_cast<int32_t>(le(4))));
        break;  // BININT
      case 'K':
        push(make_int(static_cast<int64_t>(le(1))));
        break;  // BININT1
      case 'M':
        push(make_int(static_cast<int64_t>(le(2))));
        break;      // BININT2
      case 0x8a: {  // LONG1
        const uint64_t n = le(1);
        if (n > 8) fail("integer of " + std::to_string(n) + " bytes is too large");
        const uint8_t* q = take(static_cast<size_t>(n));
        uint64_t v = 0;
        for (uint64_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(q[k]) << (8 * k);
        if (n > 0 && n < 8 && (q[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        push(make_int(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {  // BINFLOAT (big-endian double); kept only as a placeholder value
        take(8);
        push(make(Kind::Float));
        break;
      }
      case 'X':
      case 0x8c:
      case 0x8d:
      case 'T':
      case 'U':
      case 'B':
      case 'C':
      case 0x8e: {
        // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8, BINSTRING, SHORT_BINSTRING, BINBYTES,
        // SHORT_BINBYTES, BINBYTES8
        const size_t width = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
        Obj* s = make(Kind::Str);
        s->s = bytes_of(le(width));
        push(s);
        break;
      }
      case ')':
        push(tuple({}));
        break;  // EMPTY_TUPLE
      case 't':
        push(tuple(pop_mark()));
        break;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t n = static_cast<size_t>(op - 0x84);
        std::vector<Obj*> items(n);
        for (size_t k = n; k-- > 0;) items[k] = pop();
        push(tuple(std::move(items)));
        break;
      }
      case ']':
        push(make(Kind::List));
        break;  // EMPTY_LIST
      case '}':
        push(make(Kind::Dict));
        break;     // EMPTY_DICT
      case 'a': {  // APPEND
        Obj* v = pop();
        Obj* l = top();
        if (l->kind != Kind::List) fail("APPEND to " + article(l->kind));
        l->items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Obj*> vs = pop_mark();
        Obj* l = top();
        if (l->kind != Kind::List) fail("APPENDS to " + article(l->kind));
        l->items.insert(l->items.end(), vs.begin(), vs.end());
        break;
      }
      case 's': {  // SETITEM
        Obj* v = pop();
        Obj* k = pop();
        set_items(top(), {k, v});
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Obj*> kv = pop_mark();
        set_items(top(), kv);
        break;
      }
      case 'q':
        memo_put(le(1));
        break;  // BINPUT
      case 'r':
        memo_put(le(4));
        break;  // LONG_BINPUT
      case 0x94:
        memo_put(memo_.size());
        break;  // MEMOIZE
      case 'h':
        push(memo_get(le(1)));
        break;  // BINGET
      case 'j':
        push(memo_get(le(4)));
        break;     // LONG_BINGET
      case 'c': {  // GLOBAL
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Obj* name = pop();
        Obj* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) fail("STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case 'Q':
        push(persistent_load(pop()));
        break;     // BINPERSID
      case 'R': {  // REDUCE
        Obj* args = pop();
        Obj* callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {  // BUILD: only the OrderedDict's `_metadata` attribute dict, which we ignore
        Obj* state = pop();
        Obj* o = top();
        if (o->kind != Kind::Dict || (state->kind != Kind::Dict && state->kind != Kind::None)) {
          fail("BUILD on " + article(o->kind) + " is not allowed");
        }
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("pickle opcode ") + hex +
             (op >= 0x20 && op < 0x7f ? std::string(" ('") + static_cast<char>(op) + "')" : std::string()) +
             " is not allowed in a state dict (nothing was executed)");
      }
    }
  }
}

}  // namespace

std::vector<PickledTensor> read_state_dict_pickle(const uint8_t* data, size_t size, const std::string& label) {
  if (size > kMaxPickleBytes) {
    throw Error(codes::kCheckpointInvalid,
                label + ": pickle is " + std::to_string(size) + " bytes, too large for a state dict");
  }
  Unpickler u(data, size, label);
  Obj* root = u.run();
  if (root->kind != Kind::Dict) {
    throw Error(codes::kCheckpointInvalid,
                label + ": top-level object is " + article(root->kind) + ", expected a state dict (a dict of tensors)");
  }
  std::vector<PickledTensor> out;
  out.reserve(root->entries.size());
  for (const auto& [k, v] : root->entries) {
    if (k->kind != Kind::Str)
      throw Error(codes::kCheckpointInvalid, label + ": a state-dict key is " + article(k->kind) + ", expected a str");
    if (v->kind != Kind::Tensor) {
      throw Error(codes::kCheckpointInvalid, label + ": state-dict entry '" + printable(k->s) + "' is " +
                                                 article(v->kind) + ", expected a tensor");
    }
    out.push_back(v->tensor);
    out.back().name = k->s;
  }
  return out;
}

}  // namespace vitmsn
