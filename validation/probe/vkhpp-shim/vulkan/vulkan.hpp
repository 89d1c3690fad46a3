// Build shim (memfit validation, not part of llama.cpp): Debian bookworm ships Vulkan-Hpp 1.3.239,
// which predates VK_EXT_layer_settings (1.3.261). ggml-vulkan b11434 only uses those types to pass
// the validation layer's "best practices" setting at instance creation; declare them here with
// the layout of the Vulkan spec so that the rest of ggml-vulkan compiles unchanged.
#pragma once
#include_next <vulkan/vulkan.hpp>
#ifndef VK_EXT_layer_settings
#include <vector>
namespace vk {
enum class LayerSettingTypeEXT : int32_t {
    eBool32 = 0, eInt32 = 1, eInt64 = 2, eUint32 = 3, eUint64 = 4, eFloat32 = 5, eFloat64 = 6, eString = 7
};
struct LayerSettingEXT {
    const char * pLayerName;
    const char * pSettingName;
    LayerSettingTypeEXT type;
    uint32_t valueCount;
    const void * pValues;
};
struct LayerSettingsCreateInfoEXT {
    VkStructureType sType = static_cast<VkStructureType>(1000496000);  // VK_STRUCTURE_TYPE_LAYER_SETTINGS_CREATE_INFO_EXT
    const void * pNext = nullptr;
    uint32_t settingCount = 0;
    const LayerSettingEXT * pSettings = nullptr;
    explicit LayerSettingsCreateInfoEXT(const std::vector<LayerSettingEXT> & s)
        : settingCount(static_cast<uint32_t>(s.size())), pSettings(s.data()) {}
};
}  // namespace vk
#endif
