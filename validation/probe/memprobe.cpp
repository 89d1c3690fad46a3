// memprobe: ask a llama.cpp build what it would allocate, in bytes, without loading any weights.
//
// It does what llama-fit-params does for `--fit-print on` (a no_alloc dry run: load the model
// metadata, create a context, read llama_get_memory_breakdown), but prints exact byte counts
// instead of MiB, and splits the context memory into KV cache and recurrent state and reports the
// host output (logits) buffer, which llama.cpp's breakdown does not include.
//
// Usage: memprobe CASES_FILE
//   CASES_FILE has one case per line: llama.cpp CLI arguments exactly as llama-fit-params takes
//   them (`-m model.gguf -c 4096 -fa on -ctk q8_0 -ub 512 -np 4 -nr`). Each line is parsed by
//   llama.cpp's own argument parser (common_params_parse), so defaults are llama.cpp's. One extra
//   flag, -kvu (llama-server's unified KV cache), is accepted too.
//   For each line one JSON object is printed on stdout. Models are loaded once per
//   (path, repack) and reused across cases.
//   A line starting with `--server-mode` is parsed as llama-server parses its command line
//   (LLAMA_EXAMPLE_SERVER: -np defaults to auto, -kvu/-no-kvu accepted) and gets the context
//   parameters llama-server b11434 derives from it before creating its context:
//     tools/server/server.cpp llama_server(): n_parallel < 0 (auto) -> 4 slots and kv_unified = true;
//     tools/server/server-context.cpp server_output_limits(): n_outputs_max =
//       min(n_batch, n_parallel * (1 + n_draft)), n_outputs_max_per_seq = min(n_batch, 1 + n_draft)
//       (common/speculative.cpp common_speculative_get_output_limits; n_draft 0 without speculation).
//   llama-server's --fit step (common_fit_params) is not run: it only changes -c/-ngl when the
//   device memory does not suffice, which the dry run does not ask.
//
// This is memfit's own validation tool (not part of llama.cpp); it reads a few llama.cpp-internal
// classes, which is why it is compiled against the same source tree as the library.

#include "arg.h"
#include "common.h"
#include "llama.h"

#include "llama-context.h"
#include "llama-ext.h"
#include "llama-kv-cache-iswa.h"
#include "llama-kv-cache.h"
#include "llama-memory-hybrid-iswa.h"
#include "llama-memory-hybrid.h"
#include "llama-memory-recurrent.h"
#include "speculative.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

// --- read llama_context::buf_output (the host logits buffer) ---------------------------------
// Explicit instantiation may name private members; this is the standard-conforming way to read one.
template <typename Tag, typename Tag::type M>
struct member_reader {
    friend typename Tag::type get_member(Tag) { return M; }
};
struct ctx_buf_output_tag {
    using type = ggml_backend_buffer_ptr llama_context::*;
    friend type get_member(ctx_buf_output_tag);
};
template struct member_reader<ctx_buf_output_tag, &llama_context::buf_output>;

// --- log capture ------------------------------------------------------------------------------
static std::string g_log;

static void capture_log(ggml_log_level level, const char * text, void * /*user_data*/) {
    (void) level;
    g_log += text;
}

static std::string json_escape(const std::string & s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '"':  out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n";  break;
            case '\t': out += "\\t";  break;
            default:
                if ((unsigned char) c < 0x20) {
                    char buf[8];
                    snprintf(buf, sizeof(buf), "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out;
}

static size_t sum_sizes(const std::map<ggml_backend_buffer_type_t, size_t> & m) {
    size_t s = 0;
    for (const auto & kv : m) {
        s += kv.second;
    }
    return s;
}

// the log lines worth keeping for diagnostics (cache sizes, cells, flash-attn resolution...)
static std::string interesting_log(const std::string & log) {
    static const char * keys[] = {
        "llama_kv_cache", "llama_memory_recurrent", "llama_context:", "n_ctx", "flash_attn", "Flash Attention",
        "graph nodes", "graph splits", "output buffer", "compute buffer", "KV buffer", "RS buffer", "kv_unified",
        "swa", "n_seq_max", "n_batch", "n_ubatch", "causal_attn", "model buffer",
    };
    std::istringstream in(log);
    std::string line, out;
    while (std::getline(in, line)) {
        if (line.find("assigned to device") != std::string::npos || line.find(": dev = ") != std::string::npos) {
            continue; // one line per layer, no information for us
        }
        for (const char * k : keys) {
            if (line.find(k) != std::string::npos) {
                out += line + "\n";
                break;
            }
        }
    }
    return out;
}

static std::vector<std::string> split_args(const std::string & line) {
    std::vector<std::string> args;
    std::istringstream in(line);
    std::string a;
    while (in >> a) {
        args.push_back(a);
    }
    return args;
}

struct memory_split {
    size_t kv_bytes        = 0;
    size_t kv_base_bytes   = 0;
    size_t kv_swa_bytes    = 0;
    size_t recurrent_bytes = 0;
    uint32_t kv_cells      = 0; // cells of the full-attention cache (per stream)
    uint32_t kv_swa_cells  = 0;
    uint32_t kv_streams    = 0;
    uint32_t rs_cells      = 0;
    std::string kind       = "none";
};

static void add_kv(memory_split & ms, const llama_kv_cache * kv, bool swa) {
    const size_t b = sum_sizes(kv->memory_breakdown());
    ms.kv_bytes += b;
    if (swa) {
        ms.kv_swa_bytes += b;
        ms.kv_swa_cells = kv->get_size();
    } else {
        ms.kv_base_bytes += b;
        ms.kv_cells = kv->get_size();
    }
    ms.kv_streams = kv->get_n_stream();
}

static void add_iswa(memory_split & ms, const llama_kv_cache_iswa * kv) {
    add_kv(ms, kv->get_base(), false);
    add_kv(ms, kv->get_swa(), true);
}

static void add_recr(memory_split & ms, const llama_memory_recurrent * rs) {
    ms.recurrent_bytes += sum_sizes(rs->memory_breakdown());
    ms.rs_cells = rs->size;
}

static memory_split split_memory(llama_context * ctx) {
    memory_split ms;
    llama_memory_i * mem = llama_get_memory(ctx);
    if (mem == nullptr) {
        return ms;
    }
    if (auto * h = dynamic_cast<llama_memory_hybrid_iswa *>(mem)) {
        ms.kind = "hybrid_iswa";
        add_iswa(ms, h->get_mem_attn());
        add_recr(ms, h->get_mem_recr());
    } else if (auto * h = dynamic_cast<llama_memory_hybrid *>(mem)) {
        ms.kind = "hybrid";
        add_kv(ms, h->get_mem_attn(), false);
        add_recr(ms, h->get_mem_recr());
    } else if (auto * i = dynamic_cast<llama_kv_cache_iswa *>(mem)) {
        ms.kind = "kv_iswa";
        add_iswa(ms, i);
    } else if (auto * k = dynamic_cast<llama_kv_cache *>(mem)) {
        ms.kind = "kv";
        add_kv(ms, k, false);
    } else if (auto * r = dynamic_cast<llama_memory_recurrent *>(mem)) {
        ms.kind = "recurrent";
        add_recr(ms, r);
    } else {
        ms.kind = "other";
        ms.kv_bytes = sum_sizes(mem->memory_breakdown());
    }
    return ms;
}

struct loaded_model {
    llama_model * model = nullptr;
};

static std::string run_case(const std::string & line, std::map<std::string, loaded_model> & models) {
    std::vector<std::string> args = split_args(line);
    const bool server_mode = !args.empty() && args[0] == "--server-mode";
    if (server_mode) {
        args.erase(args.begin());
    }
    // -kvu is a llama-server/batched flag that llama-fit-params' parser does not accept; take it here
    bool kv_unified = false;
    for (auto it = args.begin(); it != args.end() && !server_mode;) {
        if (*it == "-kvu" || *it == "--kv-unified") {
            kv_unified = true;
            it = args.erase(it);
        } else {
            ++it;
        }
    }
    std::vector<char *> argv;
    std::string prog = "memprobe";
    argv.push_back(prog.data());
    for (auto & a : args) {
        argv.push_back(a.data());
    }

    common_params params;
    if (!common_params_parse((int) argv.size(), argv.data(), params,
                             server_mode ? LLAMA_EXAMPLE_SERVER : LLAMA_EXAMPLE_FIT_PARAMS)) {
        return "{\"error\": \"argument parsing failed\"}";
    }
    if (server_mode) {
        // tools/server/server.cpp llama_server(): -np auto
        if (params.n_parallel < 0) {
            params.n_parallel = 4;
            params.kv_unified = true;
        }
        // tools/server/server-context.cpp server_context_impl::load_model() -> server_output_limits()
        auto lim = common_speculative_get_output_limits(params.n_batch, params.n_parallel,
                                                        common_speculative_n_max(&params.speculative));
        params.n_outputs_max         = std::max<int32_t>(1, lim.total);
        params.n_outputs_max_per_seq = std::max<int32_t>(1, lim.per_seq);
    }

    llama_model_params mparams   = common_model_params_to_llama(params);
    llama_context_params cparams = common_context_params_to_llama(params);
    cparams.kv_unified = cparams.kv_unified || kv_unified;
    // exactly what common_fit_print does: a metadata-only load, nothing allocated or read
    mparams.no_alloc  = true;
    mparams.load_mode = LLAMA_LOAD_MODE_NONE;

    const std::string key = params.model.path + (mparams.use_extra_bufts ? "|repack" : "|norepack");
    g_log.clear();
    auto it = models.find(key);
    if (it == models.end()) {
        llama_model * m = llama_model_load_from_file(params.model.path.c_str(), mparams);
        if (m == nullptr) {
            return "{\"error\": \"failed to load model\", \"log\": \"" + json_escape(g_log) + "\"}";
        }
        it = models.emplace(key, loaded_model{m}).first;
    }
    llama_model * model = it->second.model;
    const std::string model_log = interesting_log(g_log);

    g_log.clear();
    llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == nullptr) {
        return "{\"error\": \"failed to create context\", \"log\": \"" + json_escape(g_log) + "\"}";
    }

    std::ostringstream js;
    js << "{";
    js << "\"n_ctx\": " << llama_n_ctx(ctx) << ", ";
    js << "\"n_ctx_seq\": " << llama_n_ctx_seq(ctx) << ", ";
    js << "\"n_batch\": " << llama_n_batch(ctx) << ", ";
    js << "\"n_ubatch\": " << llama_n_ubatch(ctx) << ", ";
    js << "\"n_seq_max\": " << llama_n_seq_max(ctx) << ", ";
    js << "\"n_outputs_max\": " << ctx->get_cparams().n_outputs_max << ", ";
    js << "\"kv_unified\": " << (ctx->get_cparams().kv_unified ? "true" : "false") << ", ";
    js << "\"server_mode\": " << (server_mode ? "true" : "false") << ", ";
    js << "\"n_ctx_train\": " << llama_model_n_ctx_train(model) << ", ";
    js << "\"n_vocab\": " << llama_vocab_n_tokens(llama_model_get_vocab(model)) << ", ";
    js << "\"flash_attn\": " << (ctx->get_cparams().flash_attn ? "true" : "false") << ", "; // after auto is resolved

    // per buffer type, as llama.cpp itself reports it
    size_t model_b = 0, context_b = 0, compute_b = 0;
    js << "\"buffers\": [";
    bool first = true;
    for (const auto & [buft, mb] : llama_get_memory_breakdown(ctx)) {
        js << (first ? "" : ", ") << "{\"buft\": \"" << json_escape(ggml_backend_buft_name(buft)) << "\", "
           << "\"host\": " << (ggml_backend_buft_is_host(buft) ? "true" : "false") << ", "
           << "\"model\": " << mb.model << ", \"context\": " << mb.context << ", \"compute\": " << mb.compute << "}";
        first = false;
        model_b += mb.model;
        context_b += mb.context;
        compute_b += mb.compute;
    }
    js << "], ";
    js << "\"model_bytes\": " << model_b << ", \"context_bytes\": " << context_b << ", \"compute_bytes\": " << compute_b << ", ";

    const memory_split ms = split_memory(ctx);
    js << "\"memory_kind\": \"" << ms.kind << "\", ";
    js << "\"kv_bytes\": " << ms.kv_bytes << ", \"kv_base_bytes\": " << ms.kv_base_bytes
       << ", \"kv_swa_bytes\": " << ms.kv_swa_bytes << ", \"recurrent_bytes\": " << ms.recurrent_bytes << ", ";
    js << "\"kv_cells\": " << ms.kv_cells << ", \"kv_swa_cells\": " << ms.kv_swa_cells
       << ", \"kv_streams\": " << ms.kv_streams << ", \"rs_cells\": " << ms.rs_cells << ", ";

    const ggml_backend_buffer_ptr & out = ctx->*get_member(ctx_buf_output_tag());
    js << "\"output_bytes\": " << (out ? ggml_backend_buffer_get_size(out.get()) : 0) << ", ";
    js << "\"output_buft\": \"" << (out ? json_escape(ggml_backend_buffer_name(out.get())) : "") << "\", ";

    js << "\"log\": \"" << json_escape(model_log + interesting_log(g_log)) << "\"";
    js << "}";

    llama_free(ctx);
    return js.str();
}

int main(int argc, char ** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASES_FILE\n", argv[0]);
        return 2;
    }
    llama_log_set(capture_log, nullptr);
    llama_backend_init();

    std::ifstream in(argv[1]);
    if (!in) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    std::map<std::string, loaded_model> models;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        std::string result;
        try {
            result = run_case(line, models);
        } catch (const std::exception & e) {
            result = std::string("{\"error\": \"") + json_escape(e.what()) + "\", \"log\": \"" + json_escape(g_log) + "\"}";
        }
        printf("%s\n", result.c_str());
        fflush(stdout);
    }
    for (auto & kv : models) {
        llama_model_free(kv.second.model);
    }
    llama_backend_free();
    return 0;
}
