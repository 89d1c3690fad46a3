// vulkan_limits_shim: LD_PRELOAD library that makes a software Vulkan device (Mesa lavapipe)
// report a desktop GPU's storage-buffer limits to llama.cpp's ggml-vulkan (memfit's own dev tool).
//
// Why: ggml-vulkan's supports_op rejects every op with a tensor larger than the device's
// maxStorageBufferRange. lavapipe reports 128 MiB, so logits, 128k-cell KV views and large score
// matrices would fall back to the CPU (or abort: "pre-allocated tensor in a buffer that cannot run
// the operation"), a graph no real GPU builds. Desktop drivers (RADV, AMD, NVIDIA) report
// 4 GiB - 1. memfit's Vulkan measurements are no_alloc dry runs (nothing is allocated, no kernel
// runs), so only the numbers llama.cpp reads matter; the driver never sees an over-limit range.
//
// How: ggml-vulkan initialises Vulkan-Hpp's dynamic dispatcher with the loader's exported
// vkGetInstanceProcAddr; this library interposes that symbol and wraps the three
// vkGetPhysicalDeviceProperties* entry points to patch the limits after the driver filled them.
//
// Environment (bytes, decimal): MEMFIT_VK_MAX_STORAGE_BUFFER_RANGE (default 4294967295),
// MEMFIT_VK_MAX_BUFFER_SIZE (VkPhysicalDeviceMaintenance4Properties; default: the driver's).
//
// Build: cc -shared -fPIC -O1 -o libvklimits.so vulkan_limits_shim.c -ldl

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

static PFN_vkGetInstanceProcAddr real_gipa;
static PFN_vkGetPhysicalDeviceProperties real_props;
static PFN_vkGetPhysicalDeviceProperties2 real_props2;
static PFN_vkGetPhysicalDeviceProperties2 real_props2_khr;

static unsigned long long env_u64(const char * name, unsigned long long dflt) {
    const char * v = getenv(name);
    return (v && *v) ? strtoull(v, NULL, 10) : dflt;
}

static void patch_limits(VkPhysicalDeviceProperties * p) {
    p->limits.maxStorageBufferRange = (uint32_t) env_u64("MEMFIT_VK_MAX_STORAGE_BUFFER_RANGE", 4294967295ull);
}

static void patch_chain(void * next) {
    const unsigned long long max_buffer = env_u64("MEMFIT_VK_MAX_BUFFER_SIZE", 0);
    for (VkBaseOutStructure * s = (VkBaseOutStructure *) next; s; s = s->pNext) {
        if (s->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES && max_buffer) {
            ((VkPhysicalDeviceMaintenance4Properties *) s)->maxBufferSize = max_buffer;
        }
    }
}

static VKAPI_ATTR void VKAPI_CALL shim_props(VkPhysicalDevice dev, VkPhysicalDeviceProperties * p) {
    real_props(dev, p);
    patch_limits(p);
}

static VKAPI_ATTR void VKAPI_CALL shim_props2(VkPhysicalDevice dev, VkPhysicalDeviceProperties2 * p) {
    real_props2(dev, p);
    patch_limits(&p->properties);
    patch_chain(p->pNext);
}

static VKAPI_ATTR void VKAPI_CALL shim_props2_khr(VkPhysicalDevice dev, VkPhysicalDeviceProperties2 * p) {
    real_props2_khr(dev, p);
    patch_limits(&p->properties);
    patch_chain(p->pNext);
}

VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetInstanceProcAddr(VkInstance instance, const char * name) {
    if (!real_gipa) {
        real_gipa = (PFN_vkGetInstanceProcAddr) dlsym(RTLD_NEXT, "vkGetInstanceProcAddr");
    }
    PFN_vkVoidFunction f = real_gipa(instance, name);
    if (!f || !name) {
        return f;
    }
    if (strcmp(name, "vkGetPhysicalDeviceProperties") == 0) {
        real_props = (PFN_vkGetPhysicalDeviceProperties) f;
        return (PFN_vkVoidFunction) shim_props;
    }
    if (strcmp(name, "vkGetPhysicalDeviceProperties2") == 0) {
        real_props2 = (PFN_vkGetPhysicalDeviceProperties2) f;
        return (PFN_vkVoidFunction) shim_props2;
    }
    if (strcmp(name, "vkGetPhysicalDeviceProperties2KHR") == 0) {
        real_props2_khr = (PFN_vkGetPhysicalDeviceProperties2) f;
        return (PFN_vkVoidFunction) shim_props2_khr;
    }
    return f;
}
