from django.urls import path

from optout.api import feed_views, webhook_views

urlpatterns = [
    path("changes", feed_views.ChangesView.as_view(), name="changes"),
    path("webhooks", webhook_views.WebhookListCreateView.as_view(), name="webhooks"),
    path("webhooks/<int:endpoint_id>", webhook_views.WebhookDetailView.as_view(), name="webhook-detail"),
    path(
        "webhooks/<int:endpoint_id>/deliveries",
        webhook_views.WebhookDeliveryListView.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/replay",
        webhook_views.WebhookDeliveryReplayView.as_view(),
        name="webhook-delivery-replay",
    ),
]
