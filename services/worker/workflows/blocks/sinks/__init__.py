"""Sink blocks: webhook, local file, e-mail, Slack and Twilio SMS notifications, S3 uploads (one module per block,
shared parts beside)."""

from services.worker.workflows.blocks.base import BlockFactory
from services.worker.workflows.blocks.sinks.email_notification import EmailNotification, EmailNotificationV2
from services.worker.workflows.blocks.sinks.local_file import LocalFileSink
from services.worker.workflows.blocks.sinks.s3 import S3Sink
from services.worker.workflows.blocks.sinks.slack_notification import SlackNotification
from services.worker.workflows.blocks.sinks.twilio_sms import TwilioSmsNotification, TwilioSmsNotificationV2
from services.worker.workflows.blocks.sinks.webhook import WebhookSink

BLOCKS: dict[str, BlockFactory] = {
    "roboflow_core/webhook_sink@v1": WebhookSink,
    "roboflow_core/local_file_sink@v1": LocalFileSink,
    "roboflow_core/email_notification@v1": EmailNotification,
    "roboflow_core/email_notification@v2": EmailNotificationV2,
    "roboflow_core/slack_notification@v1": SlackNotification,
    "roboflow_core/twilio_sms_notification@v1": TwilioSmsNotification,
    "roboflow_core/twilio_sms_notification@v2": TwilioSmsNotificationV2,
    "roboflow_core/s3_sink@v1": S3Sink,
}
