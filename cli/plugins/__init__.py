"""ics's Hydra plugins, installed as the package `hydra_plugins.ics` (Hydra's documented plugin
namespace): Hydra finds them by scanning `hydra_plugins`, as it finds any plugin a user installs."""
