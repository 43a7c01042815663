/**
 * The 19 flows of FLOWS.md as ordered lists of the real functions (or tracepoints) each must
 * show. A flow's trace passes when these names appear in this order (other steps may stand
 * between them: the real traces have more). Alternatives chosen by configuration are
 * separate variants. Exits are written `exit:<REASON>`.
 *
 * Where a seed names a wrapper the models trace one level down, the callee is listed (it is
 * the real function inside the wrapper): virtqueue_add_sgs/_outbuf → virtqueue_add_split,
 * virtqueue_kick → virtqueue_kick_prepare (+ virtqueue_notify), virtqueue_push →
 * virtqueue_flush, virtio_net_receive → virtio_net_receive_rcu; QEMU's vhost_user_set_vring_*
 * (front end, called from vhost_virtqueue_start) and DPDK's vhost_user_set_vring_* handlers
 * (called from vhost_user_msg_handler) stand for the VHOST_USER_SET_VRING_* messages.
 * Steps no kernel function performs are `hw:`-prefixed, as the models trace them: F19's
 * hw:its_translate (the ITS translating a GITS_TRANSLATER write into a vLPI) and
 * hw:its_vlpi_direct (the vLPI presented to the resident vPE through its redistributor).
 * F17's LPI path is the irqfd slow path of arch/arm64/kvm/vgic/vgic-irqfd.c and vgic-its.c
 * (first signal: translation-cache miss): irqfd_inject → kvm_set_msi → vgic_its_inject_msi →
 * vgic_its_trigger_msi → vgic_its_resolve_lpi.
 */
export interface FlowSpec {
  id: string;
  title: string;
  /** Seed document(s) the order comes from. */
  seeds: string;
  /** Package(s) whose models produce it. */
  packages: string[];
  /** Variant name → ordered function names. */
  variants: Record<string, string[]>;
}

export const FLOW_SPECS: readonly FlowSpec[] = [
  {
    id: 'F1',
    title: 'virtio-blk request kick',
    seeds: '000 §1',
    packages: ['virtio-pci', 'virtio-ring', 'kvm-irqchip'],
    variants: {
      ioeventfd: ['virtio_queue_rq', 'virtqueue_add_split', 'virtqueue_kick_prepare', 'virtqueue_notify', 'vp_notify', 'exit:EPT_MISCONFIG', 'kvm_io_bus_write', 'eventfd_signal', 'virtio_queue_host_notifier_read', 'virtio_queue_notify_vq', 'virtqueue_pop'],
      'no-ioeventfd': ['virtio_queue_rq', 'virtqueue_add_split', 'virtqueue_kick_prepare', 'virtqueue_notify', 'vp_notify', 'exit:EPT_MISCONFIG', 'virtio_pci_notify_write', 'virtio_queue_notify', 'virtqueue_pop'],
    },
  },
  {
    id: 'F2',
    title: 'virtio-net control command: ifconfig eth0 promisc',
    seeds: '000 §2.1',
    packages: ['virtio-pci'],
    variants: {
      ok: ['virtnet_set_rx_mode', 'virtnet_send_command', 'virtqueue_kick_prepare', 'virtqueue_notify', 'vp_notify', 'virtio_net_handle_ctrl', 'virtio_net_handle_rx_mode', 'virtqueue_flush', 'virtqueue_get_buf_ctx_split'],
      'wrong-size': ['virtnet_send_command', 'virtqueue_kick_prepare', 'virtqueue_notify', 'vp_notify', 'virtio_net_handle_ctrl', 'virtqueue_flush', 'virtqueue_get_buf_ctx_split'],
    },
  },
  {
    id: 'F3',
    title: 'virtio-net transmit',
    seeds: '000 §2.2',
    packages: ['virtio-pci', 'virtio-ring'],
    variants: { tx: ['start_xmit', 'virtqueue_add_split', 'virtqueue_notify', 'vp_notify', 'eventfd_signal', 'virtqueue_pop'] },
  },
  {
    id: 'F4',
    title: 'legacy timer through the userspace irqchip',
    seeds: '000 (gdb backtrace)',
    packages: ['kvm-irqchip'],
    variants: { tcg: ['pit_irq_timer', 'pit_irq_timer_update', 'qemu_set_irq', 'hpet_handle_legacy_irq', 'qemu_set_irq', 'gsi_handler', 'qemu_set_irq', 'pic_set_irq', 'pic_update_irq', 'qemu_irq_raise'] },
  },
  {
    id: 'F5',
    title: 'serial port IRQ 4 with the in-kernel irqchip',
    seeds: '000, 001',
    packages: ['kvm-irqchip'],
    variants: {
      'kernel-irqchip': [
        'serial_ioport_write', 'serial_update_irq', 'qemu_irq_raise', 'qemu_set_irq', 'kvm_pc_gsi_handler', 'qemu_set_irq', 'kvm_pic_set_irq', 'kvm_set_irq',
        'kvm_vm_ioctl_irq_line', 'kvm_set_irq', 'kvm_irq_map_gsi',
        'kvm_set_pic_irq', 'kvm_pic_set_irq', 'pic_set_irq1', 'pic_update_irq', 'pic_unlock',
        'kvm_set_ioapic_irq', 'ioapic_set_irq', 'ioapic_service', 'ioapic_deliver', 'kvm_irq_delivery_to_apic', 'kvm_apic_set_irq', '__apic_accept_irq', 'kvm_make_request', 'kvm_vcpu_kick',
        'vcpu_enter_guest', 'kvm_check_request', 'inject_pending_event', 'vmx_inject_irq', 'vmx_vcpu_run',
      ],
    },
  },
  {
    id: 'F6',
    title: 'MSI written by a userspace APIC model',
    seeds: '000',
    packages: ['kvm-irqchip'],
    variants: {
      'signal-msi': ['kvm_apic_mem_write', 'kvm_send_msi', 'kvm_irqchip_send_msi', 'kvm_send_userspace_msi', 'kvm_set_msi', 'kvm_set_msi_irq', 'kvm_irq_delivery_to_apic'],
    },
  },
  {
    id: 'F7',
    title: 'IPI from a guest ICR write',
    seeds: '000, 001',
    packages: ['kvm-irqchip'],
    variants: {
      xapic: ['exit:APIC_ACCESS', 'kvm_lapic_reg_write', 'apic_send_ipi', 'kvm_irq_delivery_to_apic', '__apic_accept_irq'],
      x2apic: ['exit:MSR_WRITE', 'handle_wrmsr', 'apic_send_ipi', 'kvm_irq_delivery_to_apic', '__apic_accept_irq'],
    },
  },
  {
    id: 'F8',
    title: 'virtio interrupt without irqfd',
    seeds: '000, 003',
    packages: ['virtio-pci', 'pci'],
    variants: {
      msix: ['virtio_queue_guest_notifier_read', 'event_notifier_test_and_clear', 'virtio_irq', 'virtio_notify_vector', 'virtio_pci_notify', 'msix_notify'],
      intx: ['virtio_queue_guest_notifier_read', 'event_notifier_test_and_clear', 'virtio_irq', 'virtio_notify_vector', 'virtio_pci_notify', 'pci_set_irq'],
    },
  },
  {
    id: 'F9',
    title: 'virtio interrupt through irqfd',
    seeds: '000, 003',
    packages: ['kvm-irqchip'],
    variants: {
      atomic: ['eventfd_signal', 'irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'kvm_set_msi_irq', 'kvm_irq_delivery_to_apic_fast'],
      deferred: ['eventfd_signal', 'irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'schedule_work', 'irqfd_inject', 'kvm_set_irq'],
    },
  },
  {
    id: 'F10',
    title: 'a packet from the physical NIC to a guest with a userspace backend',
    seeds: '001',
    packages: ['virtio-pci', 'kvm-irqchip'],
    variants: {
      msix: ['handle_irq_event', '__netif_receive_skb_core', 'br_handle_frame', 'tun_net_xmit', 'tap_send', 'virtio_net_receive_rcu', 'msix_notify', 'kvm_send_userspace_msi', 'kvm_irq_delivery_to_apic', 'kvm_vcpu_kick', 'exit:EXTERNAL_INTERRUPT', 'vmx_inject_irq'],
      intx: ['handle_irq_event', '__netif_receive_skb_core', 'br_handle_frame', 'tun_net_xmit', 'tap_send', 'virtio_net_receive_rcu', 'pci_set_irq', 'kvm_vm_ioctl_irq_line', 'kvm_set_ioapic_irq', 'ioapic_deliver', 'kvm_irq_delivery_to_apic', 'kvm_vcpu_kick', 'exit:EXTERNAL_INTERRUPT', 'vmx_inject_irq'],
    },
  },
  {
    id: 'F11',
    title: 'an MSI-X vector of an assigned device moved from vCPU 5 to vCPU 6',
    seeds: '002',
    packages: ['irqbypass'],
    variants: {
      move: [
        'vfio_pci_set_msi_trigger', 'vfio_msi_set_vector_signal', 'irq_bypass_unregister_producer', 'kvm_arch_irq_bypass_del_producer', 'vmx_pi_update_irte', 'irq_bypass_register_producer',
        'kvm_set_irq_routing', 'kvm_irq_routing_update', 'irqfd_update', 'kvm_arch_update_irqfd_routing', 'vmx_pi_update_irte',
        'vfio_pci_set_msi_trigger', 'vfio_msi_set_vector_signal', 'irq_bypass_unregister_producer', 'irq_bypass_register_producer', 'kvm_arch_irq_bypass_add_producer', 'vmx_pi_update_irte',
      ],
    },
  },
  {
    id: 'F12',
    title: 'masking and unmasking an MSI-X vector of an assigned device',
    seeds: '002',
    packages: ['irqbypass', 'pci'],
    variants: {
      'mask-fire-unmask': [
        'msix_table_mmio_write', 'msix_handle_mask_update', 'msix_fire_vector_notifier', 'vfio_msix_vector_release', 'vfio_pci_set_msi_trigger', 'vfio_msi_set_vector_signal',
        'vfio_msihandler', 'eventfd_signal', 'vfio_msi_interrupt',
        'msix_table_mmio_write', 'msix_handle_mask_update', 'msix_fire_vector_notifier', 'vfio_msix_vector_use', 'vfio_msix_vector_do_use', 'vfio_update_kvm_msi_virq', 'kvm_irqchip_update_msi_route', 'kvm_irqchip_commit_routes',
        'msix_clr_pending', 'msix_notify',
      ],
    },
  },
  {
    id: 'F13',
    title: 'irqfd assignment registers a bypass consumer',
    seeds: '002',
    packages: ['irqbypass', 'kvm-irqchip'],
    variants: {
      'consumer-first': ['kvm_irqfd_assign', 'irq_bypass_register_consumer', 'irq_bypass_register_producer', 'kvm_arch_irq_bypass_add_producer', 'vmx_pi_update_irte'],
      'producer-first': ['irq_bypass_register_producer', 'kvm_irqfd_assign', 'irq_bypass_register_consumer', 'kvm_arch_irq_bypass_add_producer', 'vmx_pi_update_irte'],
    },
  },
  {
    id: 'F14',
    title: 'starting vhost-net/vhost-user for a virtio-net device',
    seeds: '003',
    packages: ['virtio-pci', 'vhost-user'],
    variants: {
      'vhost-user': [
        'virtio_set_status', 'virtio_net_set_status', 'virtio_net_vhost_status', 'vhost_net_start', 'virtio_pci_set_guest_notifiers', 'msix_set_vector_notifiers', 'msix_set_notifier_for_vector',
        'virtio_pci_vector_unmask', 'virtio_pci_vq_vector_unmask', 'kvm_virtio_pci_irqfd_use', 'kvm_irqchip_add_irqfd_notifier_gsi',
        'vhost_user_set_vring_num', 'vhost_user_set_vring_base', 'vhost_user_set_vring_addr', 'vhost_user_set_vring_kick', 'vhost_user_set_vring_call',
      ],
      'vectorless-tx': ['virtio_set_status', 'virtio_net_vhost_status', 'vhost_net_start', 'virtio_pci_set_guest_notifiers', 'vhost_user_set_vring_num', 'vhost_user_set_vring_kick', 'vhost_user_set_vring_call', 'vhost_user_set_vring_num', 'vhost_user_set_vring_kick', 'vhost_user_set_vring_call'],
      'no-irqfd': ['virtio_set_status', 'virtio_net_set_status', 'virtio_net_vhost_status', 'vhost_net_start', 'virtio_pci_set_guest_notifiers', 'vhost_user_set_vring_num', 'vhost_user_set_vring_kick', 'vhost_user_set_vring_call'],
    },
  },
  {
    id: 'F15',
    title: 'a DPDK-style vhost-user back end',
    seeds: '003',
    packages: ['vhost-user'],
    variants: {
      qemu: ['vhost_user_set_vring_kick', 'vhost_user_set_vring_call', 'vhost_user_set_vring_num', 'vhost_user_set_vring_base', 'vhost_user_set_vring_addr', 'vhost_user_set_vring_kick', 'vhost_user_set_vring_call', 'vhost_user_set_vring_enable', 'vhost_user_set_vring_enable', 'virtio_is_ready', 'new_device'],
    },
  },
  {
    id: 'F16',
    title: 'the back end notifying the guest',
    seeds: '003',
    packages: ['vhost-user', 'virtio-ring'],
    variants: { 'event-idx': ['virtio_dev_tx_split', 'vhost_vring_call_split', 'eventfd_write', 'irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'kvm_irq_delivery_to_apic_fast', 'vmx_inject_irq'] },
  },
  {
    id: 'F17',
    title: 'virtio-net on ARM with irqfd',
    seeds: '004',
    packages: ['arm-gic'],
    variants: {
      spi: ['irqfd_wakeup', 'kvm_vgic_inject_irq', 'vgic_queue_irq_unlock', 'vgic_flush_lr_state', 'vgic_v3_populate_lr'],
      lpi: ['irqfd_wakeup', 'kvm_set_msi', 'vgic_its_inject_msi', 'vgic_its_trigger_msi', 'vgic_its_resolve_lpi', 'vgic_queue_irq_unlock', 'vgic_flush_lr_state', 'vgic_v3_populate_lr'],
    },
  },
  {
    id: 'F18',
    title: 'GICv3: a physical interrupt forwarded to a vCPU indirectly',
    seeds: '004',
    packages: ['arm-gic'],
    variants: { hw: ['exit:IRQ', 'kvm_vgic_inject_irq', 'vgic_queue_irq_unlock', 'vgic_flush_lr_state', 'vgic_v3_populate_lr'] },
  },
  {
    id: 'F19',
    title: 'GICv4: a vLPI delivered directly',
    seeds: '004',
    packages: ['arm-gic'],
    variants: {
      resident: ['hw:its_translate', 'hw:its_vlpi_direct', 'gic_handle_irq', 'gic_eoi_irq'],
      'non-resident': ['hw:its_translate', 'gic_handle_irq', 'vgic_v4_doorbell_handler', 'kvm_vcpu_kick', 'vgic_v4_load', 'its_make_vpe_resident', 'its_vpe_schedule', 'kvm_entry', 'gic_handle_irq'],
    },
  },
];

/** Checks that `names` appear in `trace` in order; returns the index of the first missing one or -1. */
export function firstMissing(expected: readonly string[], trace: readonly string[]): number {
  let at = 0;
  for (let i = 0; i < expected.length; i++) {
    while (at < trace.length && trace[at] !== expected[i]) at++;
    if (at === trace.length) return i;
    at++;
  }
  return -1;
}
