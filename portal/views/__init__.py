"""Portal views: translate pages and forms to the services and selectors of the registry's apps."""
