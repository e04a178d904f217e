"""The domain's vocabulary in the console's two languages: device kinds, event types, roles,
incident sources, notification channels. Every value of those enums has its entry here (a
test keeps it so), so the Chinese console never shows an enum name.

Keys: ``kind.<DeviceKind>``, ``type.<EventType>``, ``role.<Role>``, ``source.<Source>``,
``reason.<Reason>`` (quarantine), ``channel.<Channel>``; stages, categories and timeline actions are in ``i18n.MESSAGES``
(``stage.``, ``cat.``, ``act.``).

Words: 事件 is an incident (as the grid platforms say: 事件上报, 事件办结率); what a device
reports is a 设备事件 (an event).
"""

from __future__ import annotations

# key: (中文, English)
TERMS: dict[str, tuple[str, str]] = {
    # device kinds (gateway.events.DeviceKind)
    "kind.access": ("门禁", "Door access"),
    "kind.gate": ("车辆道闸", "Barrier gate"),
    "kind.perimeter": ("周界", "Perimeter"),
    "kind.alarm": ("一键报警", "Panic button"),
    "kind.sensor": ("传感器", "Sensor"),
    # event types (gateway.events.EventType)
    "type.access_granted": ("准许通行", "Access granted"),
    "type.access_denied": ("拒绝通行", "Access denied"),
    "type.door_open": ("门已开", "Door opened"),
    "type.door_closed": ("门已关", "Door closed"),
    "type.door_forced_open": ("强行开门", "Door forced open"),
    "type.door_held_open": ("门长时间未关", "Door held open"),
    "type.tamper": ("防拆报警", "Tamper"),
    "type.person_captured": ("人员抓拍", "Person captured"),
    "type.plate_read": ("车牌识别", "Plate read"),
    "type.vehicle_denied": ("车辆禁行", "Vehicle denied"),
    "type.intrusion": ("区域入侵", "Intrusion"),
    "type.line_crossing": ("越界", "Line crossing"),
    "type.motion": ("移动侦测", "Motion"),
    "type.video_loss": ("视频丢失", "Video loss"),
    "type.panic": ("一键报警", "Panic"),
    "type.panic_cancel": ("报警撤销", "Panic cancelled"),
    "type.alarm_input": ("报警输入", "Alarm input"),
    "type.heartbeat": ("心跳", "Heartbeat"),
    "type.online": ("上线", "Online"),
    "type.offline": ("离线", "Offline"),
    "type.battery_low": ("电量低", "Battery low"),
    "type.fire": ("火警", "Fire"),
    "type.trouble": ("故障", "Trouble"),
    "type.restore": ("恢复", "Restored"),
    "type.armed": ("布防", "Armed"),
    "type.disarmed": ("撤防", "Disarmed"),
    # roles (gateway.grid.model.Role)
    "role.grid_supervising_leader": ("网格分管领导", "Grid supervising leader"),
    "role.grid_convener": ("网格召集人", "Grid convener"),
    "role.grid_instructor": ("网格指导员", "Grid instructor"),
    "role.grid_head": ("网格长", "Grid head"),
    "role.grid_worker": ("网格员", "Grid worker"),
    "role.station_grid_worker": ("基层站所网格员", "Station grid worker"),
    "role.liaison_instructor": ("联系部门指导员", "Liaison instructor"),
    "role.community_police": ("社区民警", "Community police"),
    "role.police_desk": ("派出所值班台", "Police desk"),
    "role.property_manager": ("物业经理", "Property manager"),
    "role.command_operator": ("指挥中心值班员", "Command operator"),
    "role.resident": ("居民", "Resident"),
    "role.administrator": ("系统管理员", "Administrator"),
    "role.integrator": ("集成商", "Integrator"),
    # the gateway's own parts, as the timeline names them
    "role.rules": ("规则引擎", "rules"),
    "role.routing": ("通知路由", "routing"),
    "role.escalation": ("超时升级", "escalation"),
    "role.camera": ("摄像机", "camera"),
    # incident sources (gateway.incidents.categories.Source)
    "source.rule": ("规则触发", "Rule"),
    "source.manual": ("人工上报", "Staff report"),
    "source.hazard": ("随手报", "Resident report"),
    # why a message was quarantined (gateway.ingest.reasons.Reason)
    "reason.oversize": ("报文过大", "Oversize"),
    "reason.invalid_utf8": ("非 UTF-8 编码", "Not UTF-8"),
    "reason.malformed_json": ("JSON 格式错误", "Malformed JSON"),
    "reason.duplicate_key": ("JSON 键重复", "Duplicate JSON key"),
    "reason.too_deep": ("嵌套过深", "Nested too deep"),
    "reason.invalid_text": ("含无法存储的字符", "Unstorable text"),
    "reason.no_profile": ("无设备档案接收此主题", "No profile takes the topic"),
    "reason.no_match": ("无匹配的映射", "No mapping matches"),
    "reason.invalid_event": ("事件字段无效", "Invalid event"),
    "reason.unknown_device": ("未登记的设备", "Unknown device"),
    "reason.invalid_device_id": ("设备编号不合规", "Invalid device id"),
    "reason.adapter_error": ("适配器出错", "Adapter error"),
    "reason.malformed_frame": ("帧格式错误", "Malformed frame"),
    "reason.bad_crc": ("校验和错误", "Bad checksum"),
    "reason.bad_length": ("长度字段错误", "Bad length"),
    "reason.stale_timestamp": ("时间戳超出时间窗", "Stale timestamp"),
    "reason.decrypt_failed": ("解密失败", "Decryption failed"),
    "reason.unknown_code": ("未知事件代码", "Unknown event code"),
    "reason.duplicate": ("重复报文", "Duplicate"),
    "reason.malformed_xml": ("XML 格式错误", "Malformed XML"),
    "reason.forbidden_xml": ("禁止的 XML（DTD、实体）", "Forbidden XML (DTD, entities)"),
    "reason.malformed_body": ("报文体无法解析", "Unreadable body"),
    "reason.unauthenticated": ("认证失败", "Not authenticated"),
    # notification channels (gateway.routing.model.Channel)
    "channel.mqtt": ("MQTT 推送", "MQTT"),
    "channel.console": ("控制台", "Console"),
    "channel.sms": ("短信", "SMS"),
    "channel.voice": ("语音电话", "Voice call"),
    "channel.webhook": ("Webhook 推送", "Webhook"),
}
