#!/usr/bin/env python3
"""Record extra golden scenarios against the real /dev/kvm (run as root).

Uses the shared recorder (harness.Run, kvmgold) read-only from /work/shared/golden/recorder and writes a
file in the same format as /work/shared/golden/kvm-irqchip.json ({header, scenarios}).

  python3 tools/golden-extra/record.py [OUT.json] [--only NAME,...]
"""

import datetime
import json
import os
import sys
import traceback

sys.path.insert(0, "/work/shared/golden/recorder")
import kvmgold as K  # noqa: E402
import harness as H  # noqa: E402

EOI = 0xFEE000B0
TPR = 0xFEE00080
PPR = 0xFEE000A0
APR = 0xFEE00090
ICR = 0xFEE00300
ICR2 = 0xFEE00310
LDR = 0xFEE000D0
DFR = 0xFEE000E0
SPIV = 0xFEE000F0
ESR = 0xFEE00280
LID = 0xFEE00020
LVT0 = 0xFEE00350
ISR0 = 0xFEE00100
IRR_BASE = 0xFEE00200
SEL = 0xFEC00000
WIN = 0xFEC00010
IOEOI = 0xFEC00040

SCENARIOS = []
# offset for the random probe generators' seeds (PROBE_SEED_BASE=100 python3 record.py --probe ...)
PROBE_SEED_BASE = int(os.environ.get("PROBE_SEED_BASE", "0"))


def scenario(name, group, description, tags=(), nvcpus=4, guest=False, probe=False, irqchip=True):
    """probe=True: recorded only with --probe (checked against the model, kept out of the
    committed file to stay under its size budget)."""
    def deco(fn):
        SCENARIOS.append(dict(name=name, group=group, description=description, tags=list(tags),
                              nvcpus=nvcpus, guest=guest, fn=fn, probe=probe, irqchip=irqchip))
        return fn
    return deco


def msi(dest, vector, dm=0, logical=0, rh=0, level=0):
    return K.msi_address(dest, logical, rh), K.msi_data(vector, dm, level)


def ioredir(r, pin, **f):
    return r.redir(pin, **f)


def io_write_redir(pin, lo, hi=None):
    acc = []
    if hi is not None:
        acc += [("mmio_write", SEL, 0x11 + 2 * pin), ("mmio_write", WIN, hi)]
    acc += [("mmio_write", SEL, 0x10 + 2 * pin), ("mmio_write", WIN, lo)]
    return acc


def route_default_plus(*extra):
    return K.default_routes() + list(extra)


# =====================================================================================
# PIC
# =====================================================================================
@scenario("pic_guest_icw_init_sequence", "pic",
          "Guest programs the master 8259 with ICW1..ICW4 (0x11, base 0x30, 0x04, 0x01) while IRQ 3 is pending, ISR bit 5 preset and IMR 0xFF; "
          "then the slave with 0x11, 0x38, 0x02, 0x01; reads IRR/ISR (OCW3) and IMR.", tags=["guest"], guest=True)
def _(r):
    r.line(3, 1)
    r.pic("master", isr=0x20, imr=0xFF)
    r.start()
    r.guest_access([("out", 0x20, 0x11), ("out", 0x21, 0x30), ("out", 0x21, 0x04), ("out", 0x21, 0x01)], note="master ICW1-4")
    r.observe("after master init")
    r.guest_access([("out", 0xA0, 0x11), ("out", 0xA1, 0x38), ("out", 0xA1, 0x02), ("out", 0xA1, 0x01)], note="slave ICW1-4")
    r.guest_access([("out", 0x20, 0x0A), ("in", 0x20, 0), ("out", 0x20, 0x0B), ("in", 0x20, 0), ("in", 0x21, 0)],
                   note="read IRR, ISR, IMR")
    r.line(5, 1)
    r.line(5, 0)


@scenario("pic_guest_icw1_without_icw4", "pic",
          "Guest ICW1=0x10 (no ICW4) on the master after auto_eoi=1 was preset; ICW2 0x20, ICW3 0x04; "
          "then OCW3 read IRR with IRQ 1 edge pending, and poll.", tags=["guest"], guest=True)
def _(r):
    r.pic("master", auto_eoi=1, special_fully_nested_mode=1, rotate_on_auto_eoi=1)
    r.start()
    r.guest_access([("out", 0x20, 0x10), ("out", 0x21, 0x20), ("out", 0x21, 0x04)], note="ICW1 without IC4, ICW2, ICW3")
    r.line(1, 1)
    r.guest_access([("out", 0x20, 0x0A), ("in", 0x20, 0), ("out", 0x20, 0x0C), ("in", 0x20, 0)], note="read IRR, poll")


@scenario("pic_guest_specific_eoi_and_rotate", "pic",
          "Master ISR preset {1,3,5}: specific EOI for IRQ 3 (0x63), rotate on specific EOI for IRQ 5 (0xE5), "
          "then set priority (0xC2), rotate on non-specific EOI (0xA0).", tags=["guest"], guest=True)
def _(r):
    r.pic("master", isr=0x2A)
    r.start()
    r.guest_access([("out", 0x20, 0x63), ("out", 0x20, 0x0B), ("in", 0x20, 0)], note="specific EOI IRQ3, read ISR")
    r.guest_access([("out", 0x20, 0xE5), ("out", 0x20, 0x0B), ("in", 0x20, 0)], note="rotate on specific EOI IRQ5")
    r.observe("after rotate")
    r.guest_access([("out", 0x20, 0xC2)], note="set priority: IRQ2 lowest")
    r.guest_access([("out", 0x20, 0xA0), ("out", 0x20, 0x0B), ("in", 0x20, 0)], note="rotate on non-specific EOI")


@scenario("pic_guest_set_priority_poll_order", "pic",
          "IRQ 1, 3 and 6 pending on the master. Guest sets the lowest priority to IRQ 4 (OCW2 0xC4) and polls three times; "
          "then restores IRQ 7 lowest (0xC7).", tags=["guest"], guest=True)
def _(r):
    for i in (1, 3, 6):
        r.line(i, 1)
    r.start()
    r.guest_access([("out", 0x20, 0xC4), ("out", 0x20, 0x0C), ("in", 0x20, 0)], note="priority IRQ4 lowest, poll")
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="poll")
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="poll")
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0), ("out", 0x20, 0xC7)], note="poll empty, priority IRQ7 lowest")


@scenario("pic_auto_eoi_rotate_poll", "pic",
          "Master auto_eoi and rotate_on_auto_eoi preset; IRQ 2..5 edge pending via slave? no: IRQ 3 and IRQ 5 raised; guest polls twice; "
          "OCW2 0x00 (clear rotate in auto-EOI) and 0x80 (set) are written between.", tags=["guest"], guest=True)
def _(r):
    r.pic("master", auto_eoi=1, rotate_on_auto_eoi=1)
    r.line(3, 1)
    r.line(5, 1)
    r.start()
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="poll #1")
    r.guest_access([("out", 0x20, 0x00), ("out", 0x20, 0x0C), ("in", 0x20, 0)], note="clear rotate-in-AEOI, poll #2")
    r.guest_access([("out", 0x20, 0x80)], note="set rotate-in-AEOI")


@scenario("pic_slave_cascade_poll_and_eoi", "pic",
          "IRQ 10 and IRQ 12 raised (slave pins 2 and 4, edge). Master poll returns the cascade; slave polls; "
          "then slave ISR preset and master ISR bit 2 preset, non-specific EOI on slave then master.", tags=["guest"], guest=True)
def _(r):
    r.line(10, 1)
    r.line(12, 1)
    r.start()
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="master poll")
    r.guest_access([("out", 0xA0, 0x0C), ("in", 0xA0, 0)], note="slave poll")
    r.guest_access([("out", 0xA0, 0x0C), ("in", 0xA0, 0)], note="slave poll")
    r.pic("slave", isr=0x14)
    r.pic("master", isr=0x04)
    r.guest_access([("out", 0xA0, 0x20), ("out", 0x20, 0x20), ("out", 0xA0, 0x0B), ("in", 0xA0, 0)], note="EOI slave, EOI master, read slave ISR")


@scenario("pic_slave_imr_cascade_masked", "pic",
          "Master IMR bit 2 set (cascade masked): raise IRQ 9 and IRQ 11, lower IRQ 9; unmask the cascade with a guest OCW1; "
          "raise IRQ 11 again.", tags=["guest"], guest=True)
def _(r):
    r.start()
    r.guest_access([("out", 0x21, 0x04)], note="master IMR = 0x04")
    r.line(9, 1)
    r.line(11, 1)
    r.line(9, 0)
    r.observe("masked cascade")
    r.guest_access([("out", 0x21, 0x00), ("in", 0x21, 0), ("in", 0xA1, 0)], note="unmask cascade, read both IMRs")
    r.line(11, 1)
    r.line(11, 0)


@scenario("pic_elcr_level_multiple_sources", "pic",
          "Guest sets ELCR (0x4D0=0x28, 0x4D1=0x02): IRQ 3, 5 and 9 level. IRQ 5 raised by KVM_IRQ_LINE_STATUS and by an irqfd-less second "
          "GSI routed to the same PIC pin (GSI 40 -> master pin 5); lowers from each source.", tags=["guest"], guest=True)
def _(r):
    r.routing(route_default_plus(K.route_irqchip(40, 0, 5)))
    r.start()
    r.guest_access([("out", 0x4D0, 0x28), ("out", 0x4D1, 0x02), ("in", 0x4D0, 0), ("in", 0x4D1, 0)], note="ELCR write/read")
    r.line(5, 1)
    r.line(40, 1)
    r.line(5, 0)
    r.observe("GSI 40 still high")
    r.line(40, 0)
    r.line(9, 1)
    r.line(9, 1)
    r.line(9, 0)


@scenario("pic_level_line_in_service_lowered", "pic",
          "IRQ 4 level (ELCR via KVM_SET_IRQCHIP), raised, polled (ack), raised again while in service? Poll acks+EOIs; "
          "then ISR bit 4 preset by SET_IRQCHIP while line high, lower, non-specific EOI, raise.", tags=["guest"], guest=True)
def _(r):
    r.pic("master", elcr=0x10)
    r.start()
    r.line(4, 1)
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="poll acks IRQ4 (level still high)")
    r.observe("after poll")
    r.pic("master", isr=0x10)
    r.line(4, 0)
    r.guest_access([("out", 0x20, 0x20)], note="non-specific EOI")
    r.line(4, 1)
    r.line(4, 1)


@scenario("pic_special_mask_and_read_regs", "pic",
          "Master ISR preset {2,6}, IRQ 1 and IRQ 7 pending. Guest sets special mask mode (0x68), IMR 0x40, polls, clears special mask "
          "(0x48), polls; reads IRR/ISR via OCW3 read-register (0x0A/0x0B) and the poll bit combined with RR (0x0E).", tags=["guest"], guest=True)
def _(r):
    r.line(1, 1)
    r.line(7, 1)
    r.pic("master", isr=0x44)
    r.start()
    r.guest_access([("out", 0x20, 0x68), ("out", 0x21, 0x40), ("out", 0x20, 0x0C), ("in", 0x20, 0)], note="SMM on, IMR 0x40, poll")
    r.guest_access([("out", 0x20, 0x48), ("out", 0x20, 0x0C), ("in", 0x20, 0)], note="SMM off, poll")
    r.guest_access([("out", 0x20, 0x0A), ("in", 0x20, 0), ("out", 0x20, 0x0B), ("in", 0x20, 0), ("in", 0x20, 0),
                    ("out", 0x20, 0x0E), ("in", 0x20, 0), ("in", 0x20, 0)], note="read IRR, ISR, ISR again, poll+RR")


@scenario("pic_edge_raise_masked_then_unmask_guest", "pic",
          "IRQ 6 masked in IMR (KVM_SET_IRQCHIP imr=0x40): raise (latched), lower, raise; guest unmasks (OCW1 0x00) and polls.",
          tags=["guest"], guest=True)
def _(r):
    r.pic("master", imr=0x40)
    r.start()
    r.line(6, 1)
    r.line(6, 0)
    r.line(6, 1)
    r.guest_access([("out", 0x21, 0x00), ("out", 0x20, 0x0C), ("in", 0x20, 0)], note="unmask, poll")
    r.line(6, 0)
    r.line(6, 1)


# =====================================================================================
# IOAPIC
# =====================================================================================
@scenario("ioapic_masked_level_unmask_by_guest", "ioapic",
          "Pin 21 level, masked, vector 0x45, dest 1: raise (masked), then the guest rewrites IOREDTBL[21] low word unmasked; "
          "then an edge pin 22 masked+raised and unmasked by the guest the same way.", tags=["guest"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(21, vector=0x45, trigger=1, mask=1, dest=1)
    r.redir(22, vector=0x46, trigger=0, mask=1, dest=1)
    r.start()
    r.line(21, 1)
    r.line(22, 1)
    r.observe("both masked and raised")
    r.guest_access(io_write_redir(21, 0x8045), note="unmask pin 21 (level)")
    r.guest_access(io_write_redir(22, 0x0046), note="unmask pin 22 (edge)")
    r.line(22, 0)
    r.line(22, 1)


@scenario("ioapic_level_eoi_after_lower_no_redelivery", "ioapic",
          "Pin 19 level, vector 0x43, dest 0: raise, ack, lower, EOI (no re-delivery); raise again, raise once more while remote_irr set, ack, EOI while high.",
          tags=["guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(19, vector=0x43, trigger=1, dest=0)
    r.start()
    r.line(19, 1)
    r.simulated_ack(0, 0x43)
    r.line(19, 0)
    r.guest_eoi()
    r.observe("after EOI with line low")
    r.line(19, 1)
    r.line(19, 1)
    r.simulated_ack(0, 0x43)
    r.guest_eoi()


@scenario("ioapic_polarity_low_level_and_edge", "ioapic",
          "Pin 16 level active-low and pin 17 edge active-low (vector 0x50/0x51, dest 1): raise with level 1 and 0 in both orders.",
          tags=[])
def _(r):
    r.enable_lapics()
    r.redir(16, vector=0x50, trigger=1, polarity=1, dest=1)
    r.redir(17, vector=0x51, trigger=0, polarity=1, dest=1)
    r.start()
    r.line(16, 0)
    r.line(17, 0)
    r.line(16, 1)
    r.line(17, 1)
    r.line(17, 0)
    r.line(16, 0)


@scenario("ioapic_vector_change_while_remote_irr", "ioapic",
          "Pin 20 level vector 0x60 dest 0 delivered (remote_irr=1, line high); the guest rewrites the entry with vector 0x61; "
          "ack+EOI of 0x60 (old vector), then the trigger is changed to edge by the guest.", tags=["guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(20, vector=0x60, trigger=1, dest=0)
    r.start()
    r.line(20, 1)
    r.guest_access(io_write_redir(20, 0x8061), note="vector 0x60 -> 0x61, level")
    r.simulated_ack(0, 0x60)
    r.guest_eoi(note="EOI old vector 0x60")
    r.observe("after old-vector EOI")
    r.guest_access(io_write_redir(20, 0x0061), note="trigger -> edge")
    r.guest_access(io_write_redir(20, 0x8061), note="trigger -> level again")
    r.line(20, 0)
    r.line(20, 1)


@scenario("ioapic_ioregsel_out_of_range", "ioapic",
          "Guest IOREGSEL writes: 0x3F (redir 23 high), 0x40, 0x80, 0xFF, 0x12345603 then IOWIN reads and a write to 0x50; "
          "IOREGSEL readback; the IOAPIC EOI register and version/ARB registers.", tags=["guest"], guest=True)
def _(r):
    r.start()
    r.guest_access([("mmio_write", SEL, 0x3F), ("mmio_read", WIN, 0), ("mmio_write", SEL, 0x40), ("mmio_read", WIN, 0),
                    ("mmio_write", SEL, 0x80), ("mmio_read", WIN, 0), ("mmio_write", SEL, 0xFF), ("mmio_read", WIN, 0),
                    ("mmio_read", SEL, 0)], note="reads at 0x3F, 0x40, 0x80, 0xFF")
    r.guest_access([("mmio_write", SEL, 0x12345603), ("mmio_read", SEL, 0), ("mmio_read", WIN, 0),
                    ("mmio_write", SEL, 0x50), ("mmio_write", WIN, 0xDEADBEEF), ("mmio_read", WIN, 0)], note="IOREGSEL high bits; write at 0x50")
    r.guest_access([("mmio_write", SEL, 0x01), ("mmio_read", WIN, 0), ("mmio_write", WIN, 0xFFFFFFFF), ("mmio_read", WIN, 0),
                    ("mmio_write", SEL, 0x02), ("mmio_write", WIN, 0x0A000000), ("mmio_read", WIN, 0),
                    ("mmio_write", SEL, 0x00), ("mmio_write", WIN, 0x05000000), ("mmio_read", WIN, 0),
                    ("mmio_write", SEL, 0x02), ("mmio_read", WIN, 0), ("mmio_read", IOEOI, 0)],
                   note="version write, ARB write, ID=5, ARB read, EOI reg read")


@scenario("ioapic_guest_redir_read_write_halves", "ioapic",
          "Guest writes IOREDTBL[5] high (dest 0x03) and low (vector 0x55 level, remote_irr and delivery_status bits set in the written value), "
          "reads both halves back; reads IOREDTBL[0] (reset value).", tags=["guest"], guest=True)
def _(r):
    r.start()
    r.guest_access(io_write_redir(5, 0x1D055 | 0x4000, 0x03FFFFFF), note="write pin5 hi then lo (mask, level, RIRR, DS, polarity bits)")
    r.guest_access([("mmio_write", SEL, 0x1A), ("mmio_read", WIN, 0), ("mmio_write", SEL, 0x1B), ("mmio_read", WIN, 0),
                    ("mmio_write", SEL, 0x10), ("mmio_read", WIN, 0), ("mmio_write", SEL, 0x11), ("mmio_read", WIN, 0)],
                   note="read pin5 lo/hi, pin0 lo/hi")


@scenario("ioapic_two_gsis_one_pin_sources", "ioapic",
          "GSI 40 also routed to IOAPIC pin 17 (level, vector 0x47, dest 1). Raise GSI 17 and GSI 40, lower GSI 17, "
          "ack+EOI at vCPU1? (no guest there) -- instead observe irr; lower GSI 40.", tags=[])
def _(r):
    r.enable_lapics()
    r.routing(route_default_plus(K.route_irqchip(40, 2, 17)))
    r.redir(17, vector=0x47, trigger=1, dest=1)
    r.start()
    r.line(17, 1)
    r.line(40, 1)
    r.line(17, 0)
    r.observe("after lowering GSI 17")
    r.line(40, 0)
    r.line(40, 1)


@scenario("ioapic_level_logical_two_vcpus_eoi", "ioapic",
          "Level pin 18 logical flat dest 0x03 (vCPU0 and vCPU1), vector 0x58, fixed: raise; ack on both; vCPU0 EOIs (guest) while high -> "
          "re-delivery; observe IRRs.", tags=["guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.flat_ldrs()
    r.redir(18, vector=0x58, trigger=1, dest_mode=1, dest=0x03)
    r.start()
    r.line(18, 1)
    r.simulated_ack(0, 0x58)
    r.simulated_ack(1, 0x58)
    r.guest_eoi()
    r.observe("after vCPU0 EOI")
    r.line(18, 0)
    r.simulated_ack(0, 0x58)
    r.guest_eoi()


@scenario("ioapic_delivery_nmi_init_extint", "ioapic",
          "Pin 16 NMI edge dest 1, pin 17 INIT edge dest 2, pin 18 ExtINT edge dest 0, pin 19 NMI level dest 3: raise each; "
          "lower pin 19 and raise it again; KVM_GET_MP_STATE(2).", tags=[])
def _(r):
    r.enable_lapics()
    r.redir(16, vector=0, delivery_mode=4, dest=1)
    r.redir(17, vector=0, delivery_mode=5, dest=2)
    r.redir(18, vector=0x20, delivery_mode=7, dest=0)
    r.redir(19, vector=0, delivery_mode=4, trigger=1, dest=3)
    r.start()
    for p in (16, 17, 18, 19):
        r.line(p, 1)
    r.line(19, 0)
    r.line(19, 1)
    r.mp_state(2)


@scenario("ioapic_lowest_priority_cluster", "ioapic",
          "Cluster DFR on all vCPUs: vCPU0/1 cluster 1 (LDR 0x11, 0x12), vCPU2/3 cluster 2 (0x21, 0x22). Lowest-priority pins 16..21 "
          "with dests 0x13, 0x23, 0x11, 0x33, 0x1F, 0xFF and vectors 0x30..0x35.", tags=[])
def _(r):
    for c, ldr in enumerate((0x11, 0x12, 0x21, 0x22)):
        r.lapic(c, enable=True, ldr=ldr << 24, dfr=K.APIC_DFR_CLUSTER)
    dests = (0x13, 0x23, 0x11, 0x33, 0x1F, 0xFF)
    for i, d in enumerate(dests):
        r.redir(16 + i, vector=0x30 + i, delivery_mode=1, dest_mode=1, dest=d)
    r.start()
    for i in range(len(dests)):
        r.line(16 + i, 1)


@scenario("ioapic_edge_coalesced_and_unmask_set_irqchip", "ioapic",
          "Edge pin 23 vector 0x57 dest 2: raise, lower, raise (IRR still set in LAPIC), then mask via KVM_SET_IRQCHIP and raise; "
          "unmask via KVM_SET_IRQCHIP.", tags=[])
def _(r):
    r.enable_lapics()
    r.redir(23, vector=0x57, dest=2)
    r.start()
    r.line(23, 1)
    r.line(23, 0)
    r.line(23, 1)
    r.line(23, 0)
    r.redir(23, vector=0x57, dest=2, mask=1)
    r.line(23, 1)
    r.redir(23, vector=0x57, dest=2, mask=0)


@scenario("ioapic_set_irqchip_remote_irr_preset", "ioapic",
          "KVM_SET_IRQCHIP writes pin 20 level with remote_irr=1 and irr bit 20 set (vector 0x52, dest 0); then raise, guest EOI of 0x52 "
          "with TMR set by KVM_SET_LAPIC.", tags=["guest", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.start()
    r.ioapic({20: dict(vector=0x52, trigger=1, remote_irr=1, dest=0)}, irr=1 << 20)
    r.line(20, 1)
    r.lapic(0, isr=[0x52], tmr=[0x52])
    r.guest_eoi()


# =====================================================================================
# LAPIC
# =====================================================================================
@scenario("lapic_tpr_ppr_isr_combinations", "lapic",
          "Guest on vCPU0 writes TPR values and reads TPR/PPR/APR with ISR preset {0x47} then {0x47,0x91}; TPR writes with high bits.",
          tags=["guest"], guest=True)
def _(r):
    r.lapic(0, enable=True, isr=[0x47])
    r.start()
    acc = []
    for t in (0x00, 0x35, 0x40, 0x4F, 0x50, 0xFFFFFF3A):
        acc += [("mmio_write", TPR, t), ("mmio_read", TPR, 0), ("mmio_read", PPR, 0)]
    r.guest_access(acc, note="TPR sweep with ISR 0x47")
    r.lapic(0, isr=[0x91])
    r.guest_access([("mmio_write", TPR, 0x80), ("mmio_read", PPR, 0), ("mmio_write", TPR, 0xA0), ("mmio_read", PPR, 0),
                    ("mmio_read", APR, 0), ("mmio_write", EOI, 0), ("mmio_read", PPR, 0), ("mmio_write", TPR, 0),
                    ("mmio_read", PPR, 0)], note="ISR 0x47+0x91, EOI")


@scenario("lapic_logical_cluster_msi", "lapic",
          "Cluster model: vCPU n LDR = (cluster n//2 + 1)<<4 | bit (n%2). KVM_SIGNAL_MSI logical fixed to 0x11, 0x13, 0x21, 0x31, 0xF1, 0x1F, 0xFF, 0x00.",
          tags=[])
def _(r):
    for c in range(4):
        r.lapic(c, enable=True, ldr=((((c // 2) + 1) << 4) | (1 << (c % 2))) << 24, dfr=K.APIC_DFR_CLUSTER)
    r.start()
    for i, d in enumerate((0x11, 0x13, 0x21, 0x31, 0xF1, 0x1F, 0xFF, 0x00)):
        a, dt = msi(d, 0x40 + i, logical=1)
        r.msi(a, dt)


@scenario("lapic_lowest_priority_hashing_msi", "lapic",
          "Flat logical model (vCPU n bit n): KVM_SIGNAL_MSI lowest-priority to dest 0x0F, 0x0A, 0x0E, 0x05 with vectors 0x50..0x57; "
          "vCPU2 software-disabled for the last ones.", tags=[])
def _(r):
    r.flat_ldrs()
    r.start()
    for d in (0x0F, 0x0A, 0x0E):
        for v in (0x50, 0x51, 0x52):
            a, dt = msi(d, v, dm=1, logical=1)
            r.msi(a, dt)
    r.lapic(2, enable=False)
    for v in (0x54, 0x55, 0x56):
        a, dt = msi(0x0E, v, dm=1, logical=1)
        r.msi(a, dt)


@scenario("lapic_broadcast_ff_mixed_states", "lapic",
          "Physical broadcast 0xFF fixed/NMI/lowest MSIs with vCPU1 software-disabled and vCPU3 hardware-disabled (APIC base bit 11 clear).",
          tags=[])
def _(r):
    r.enable_lapics([0, 2])
    r.set_msr(3, K.MSR_IA32_APICBASE, 0xFEE00000)
    r.start()
    a, d = msi(0xFF, 0x60)
    r.msi(a, d)
    a, d = msi(0xFF, 0x61, dm=1)
    r.msi(a, d)
    a, d = msi(0xFF, 0, dm=4)
    r.msi(a, d)
    a, d = msi(0xFF, 0x62, logical=1)
    r.msi(a, d)


@scenario("lapic_msi_init_sipi_sequence", "lapic",
          "KVM_SIGNAL_MSI INIT to APIC 2, KVM_GET_MP_STATE(2), SIPI vector 0x10 to APIC 2, KVM_GET_MP_STATE(2); INIT logical to 0x08 (vCPU3 flat bit 3).",
          tags=[])
def _(r):
    r.flat_ldrs()
    r.lapic(2, tpr=0x30, irr=[0x70])
    r.start()
    a, d = msi(2, 0, dm=5)
    r.msi(a, d)
    r.observe("INIT latched")
    r.mp_state(2)
    a, d = msi(2, 0x10, dm=6)
    r.msi(a, d)
    r.mp_state(2)
    a, d = msi(0x08, 0, dm=5, logical=1)
    r.msi(a, d)


@scenario("lapic_guest_ldr_dfr_writes_then_msi", "lapic",
          "vCPU0's guest writes its own LDR (0x01000000 then 0x0F000000 with low bits) and DFR (cluster, then flat); MSI logical dests after each.",
          tags=["guest"], guest=True)
def _(r):
    r.flat_ldrs([1, 2, 3])
    r.lapic(0, enable=True)
    r.start()
    r.guest_access([("mmio_write", LDR, 0x01000000), ("mmio_read", LDR, 0), ("mmio_read", DFR, 0)], note="LDR bit 0")
    a, d = msi(0x01, 0x41, logical=1)
    r.msi(a, d)
    r.guest_access([("mmio_write", DFR, 0x0FFFFFFF), ("mmio_read", DFR, 0), ("mmio_write", LDR, 0x12345678), ("mmio_read", LDR, 0)],
                   note="DFR cluster, LDR 0x12")
    a, d = msi(0x12, 0x42, logical=1)
    r.msi(a, d)
    a, d = msi(0x02, 0x43, logical=1)
    r.msi(a, d)
    r.guest_access([("mmio_write", DFR, 0xFFFFFFFF), ("mmio_write", LDR, 0x80000000)], note="DFR flat, LDR bit 7")
    a, d = msi(0x80, 0x44, logical=1)
    r.msi(a, d)
    a, d = msi(0x82, 0x45, logical=1)
    r.msi(a, d)


@scenario("lapic_guest_icr_ipis", "lapic",
          "Guest on vCPU0 sends ICR IPIs: fixed physical to 2, fixed logical to 0x0C, lowest logical 0x0E, NMI to 1, fixed to nonexistent 7, "
          "level-assert fixed to 3, and reads ICR/ICR2/ESR back.", tags=["guest", "ipi"], guest=True)
def _(r):
    r.flat_ldrs()
    r.start()
    def ipi(dest, low):
        return [("mmio_write", ICR2, dest << 24), ("mmio_write", ICR, low)]
    r.guest_access(ipi(2, 0x4070), note="fixed phys 2 vec 0x70")
    r.guest_access(ipi(0x0C, 0x4871), note="fixed logical 0x0C vec 0x71")
    r.guest_access(ipi(0x0E, 0x4972), note="lowest logical 0x0E vec 0x72")
    r.guest_access(ipi(1, 0x4400), note="NMI to 1")
    r.guest_access(ipi(7, 0x4073), note="fixed to nonexistent 7")
    r.guest_access(ipi(3, 0xC074) + [("mmio_read", ICR, 0), ("mmio_read", ICR2, 0),
                                     ("mmio_write", ESR, 0), ("mmio_read", ESR, 0)], note="level fixed to 3, readbacks")


@scenario("lapic_guest_ipi_illegal_vector_and_disabled", "lapic",
          "Guest ICR fixed IPI vector 0x05 to APIC 1 (illegal vector), fixed self 0x0F, to a software-disabled vCPU2; ESR readback; "
          "then vCPU0 software-disables itself via SPIV and sends a self IPI.", tags=["guest", "ipi"], guest=True)
def _(r):
    r.enable_lapics([0, 1, 3])
    r.start()
    r.guest_access([("mmio_write", ICR2, 1 << 24), ("mmio_write", ICR, 0x4005), ("mmio_write", ESR, 0), ("mmio_read", ESR, 0)],
                   note="vector 5 to APIC 1")
    r.guest_access([("mmio_write", ICR, 0x4400F), ("mmio_write", ESR, 0), ("mmio_read", ESR, 0)], note="self vector 0x0F")
    r.guest_access([("mmio_write", ICR2, 2 << 24), ("mmio_write", ICR, 0x4066)], note="to disabled vCPU2")
    r.guest_access([("mmio_write", SPIV, 0xFF), ("mmio_write", ICR, 0x44067), ("mmio_read", SPIV, 0), ("mmio_read", LVT0, 0)],
                   note="sw-disable self, self IPI")


@scenario("lapic_eoi_with_tpr_and_multiple_isr", "lapic",
          "vCPU0 ISR {0x31, 0x52, 0x53}, IRR {0x60, 0x20}, TMR {0x52}; level pin 18 vector 0x52 with remote_irr preset; "
          "guest EOIs three times reading PPR/ISR after each.", tags=["guest", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.ioapic({18: dict(vector=0x52, trigger=1, remote_irr=1, dest=0)})
    r.lapic(0, tpr=0x40, isr=[0x31, 0x52, 0x53], irr=[0x60, 0x20], tmr=[0x52])
    r.start()
    for i in range(3):
        r.guest_access([("mmio_write", EOI, 0), ("mmio_read", PPR, 0), ("mmio_read", ISR0 + 0x20, 0)], note="EOI #%d" % (i + 1))


@scenario("lapic_id_change_then_msi", "lapic",
          "KVM_SET_LAPIC changes vCPU1's xAPIC ID to 5 and vCPU2's to 1 (aliased with nobody? vCPU1 no longer 1); MSI to physical 1, 2, 5; "
          "then vCPU3's ID to 5 as well (duplicate) and MSI to 5 and 3.", tags=[])
def _(r):
    r.enable_lapics()
    r.start()
    r.lapic(1, apic_id=5)
    r.lapic(2, apic_id=1)
    for dst, v in ((1, 0x41), (2, 0x42), (5, 0x45)):
        a, d = msi(dst, v)
        r.msi(a, d)
    r.lapic(3, apic_id=5)
    for dst, v in ((5, 0x46), (3, 0x47), (0xFF, 0x48)):
        a, d = msi(dst, v)
        r.msi(a, d)


# =====================================================================================
# MSI / routing
# =====================================================================================
@scenario("routing_many_entries", "msi_routing",
          "Table of 16 MSI entries (GSI 24..39, dest gsi%4, vector 0x30+gsi%64) plus the default irqchip routes; raise GSIs 24, 30, 39, 40.",
          tags=[])
def _(r):
    r.enable_lapics()
    ents = K.default_routes() + [K.route_msi(g, K.msi_address(g % 4), K.msi_data(0x30 + g % 64)) for g in range(24, 40)]
    r.routing(ents)
    r.start()
    for g in (24, 30, 39, 40):
        r.line(g, 1)
        r.line(g, 0)


@scenario("routing_invalid_entries", "msi_routing",
          "KVM_SET_GSI_ROUTING rejections: irqchip 3, PIC pin 8, IOAPIC pin 24, two PIC-master entries on one GSI, entry flags 1 on an irqchip entry, "
          "unknown type 7, header flags 1, nr 4097, GSI 4096; then a valid table with GSI 4095.", tags=[])
def _(r):
    r.start()
    r.routing([K.route_irqchip(1, 3, 1)], note="irqchip 3")
    r.routing([K.route_irqchip(1, 0, 8)], note="PIC pin 8")
    r.routing([K.route_irqchip(1, 2, 24)], note="IOAPIC pin 24")
    r.routing([K.route_irqchip(1, 0, 1), K.route_irqchip(1, 0, 2)], note="two PIC master pins on GSI 1")
    r.routing([K.route_irqchip(1, 0, 1), K.route_irqchip(1, 1, 1)], note="PIC master and slave on GSI 1")
    e = K.route_irqchip(2, 2, 2)
    e["flags"] = 1
    r.routing([e], note="entry flags 1 (irqchip)")
    m = K.route_msi(30, K.msi_address(0), K.msi_data(0x40), flags=1, devid=5)
    r.routing([m], note="MSI entry with KVM_MSI_VALID_DEVID")
    r.routing([{"gsi": 3, "type": 7, "flags": 0, "raw": b""}], note="unknown type 7")
    r.routing([K.route_irqchip(3, 2, 3)], flags=1, note="header flags 1")
    r.routing([K.route_irqchip(3, 2, 3)], nr=4097, note="nr 4097 (> KVM_MAX_IRQ_ROUTES)")
    r.routing([K.route_irqchip(4096, 2, 3)], note="GSI 4096")
    r.routing([K.route_irqchip(4095, 2, 3), K.route_irqchip(5, 2, 5)], note="GSI 4095 and 5 to IOAPIC")
    r.line(4095, 1)
    r.line(3, 1)
    r.line(1, 1)


@scenario("irq_line_gsi_without_route", "msi_routing",
          "Routing table with only GSI 100 -> IOAPIC pin 10 (edge, vector 0x3A, dest 0): KVM_IRQ_LINE_STATUS and KVM_IRQ_LINE on GSI 0, 10, 100, 2000, 5000.",
          tags=[])
def _(r):
    r.enable_lapics()
    r.redir(10, vector=0x3A, dest=0)
    r.routing([K.route_irqchip(100, 2, 10)])
    r.start()
    for g in (0, 10, 100, 2000, 5000):
        r.line(g, 1)
        r.line_nostatus(g, 0)
        r.line(g, 0)


@scenario("msi_bad_address_and_ext_bits", "msi_routing",
          "KVM_SIGNAL_MSI with address_lo base 0xFED00000, 0x00000000, address_hi 0xFFFFFFFF, address_lo low bits 0..1 set, and data with bits 16..31 set; "
          "MSI routes with the same addresses raised through GSI 24/25.", tags=[])
def _(r):
    r.enable_lapics()
    r.routing(route_default_plus(K.route_msi(24, 0xFED01000, K.msi_data(0x61)),
                                 K.route_msi(25, 0x00002003, K.msi_data(0x62), address_hi=0x12)))
    r.start()
    r.msi(0xFED01000, K.msi_data(0x51))
    r.msi(0x00002000, K.msi_data(0x52))
    r.msi(K.msi_address(3), K.msi_data(0x53), address_hi=0xFFFFFFFF)
    r.msi(K.msi_address(1) | 3, K.msi_data(0x54))
    r.msi(K.msi_address(0), 0xFFFF0055)
    r.line(24, 1)
    r.line(25, 1)


@scenario("msi_delivery_modes_all", "msi_routing",
          "KVM_SIGNAL_MSI to physical APIC 1 with delivery modes 0..7 (vector 0x66), each once, and a level-triggered NMI and ExtINT; "
          "then observe vcpu events.", tags=[])
def _(r):
    r.enable_lapics()
    r.start()
    for dm in range(8):
        a, d = msi(1, 0x66, dm=dm)
        r.msi(a, d)
    a, d = msi(2, 0x67, dm=4, level=1)
    r.msi(a, d)
    a, d = msi(2, 0x68, dm=7, level=1)
    r.msi(a, d)
    r.mp_state(1)


@scenario("msi_routes_level_lowest_logical", "msi_routing",
          "GSI 24 -> MSI lowest-priority logical 0x06 vector 0x71; GSI 25 -> MSI fixed with redirection hint logical 0x0C vector 0x72; "
          "GSI 26 -> MSI NMI dest 3; raise/lower each (flat LDRs).", tags=[])
def _(r):
    r.flat_ldrs()
    a1, d1 = msi(0x06, 0x71, dm=1, logical=1)
    a2, d2 = msi(0x0C, 0x72, rh=1, logical=1)
    a3, d3 = msi(3, 0, dm=4)
    r.routing(route_default_plus(K.route_msi(24, a1, d1), K.route_msi(25, a2, d2), K.route_msi(26, a3, d3)))
    r.start()
    for g in (24, 25, 26):
        r.line(g, 1)
        r.line(g, 0)
    r.line(24, 1)


@scenario("routing_update_keeps_ioapic_state", "msi_routing",
          "Level pin 18 (vector 0x48, dest 1) raised with default routing; the table is replaced with one that has no route for GSI 18; "
          "lower GSI 18 (no route) and observe; reinstall default routing and lower.", tags=[])
def _(r):
    r.enable_lapics()
    r.redir(18, vector=0x48, trigger=1, dest=1)
    r.start()
    r.line(18, 1)
    r.routing([K.route_irqchip(0, 0, 0)])
    r.line(18, 0)
    r.observe("no route for 18")
    r.routing(K.default_routes())
    r.line(18, 0)
    r.line(18, 1)


@scenario("signal_msi_flags_and_devid", "msi_routing",
          "KVM_SIGNAL_MSI with flags 1 (VALID_DEVID, devid 0x1234), flags 2, flags 0x80000000; and the APIC map disabled by aliased IDs: fixed to a missing APIC.",
          tags=[])
def _(r):
    r.enable_lapics()
    r.start()
    a, d = msi(1, 0x41)
    r.msi(a, d, flags=1, devid=0x1234)
    r.msi(a, d, flags=2)
    r.msi(a, d, flags=0x80000000)
    r.lapic(2, apic_id=3)
    a, d = msi(2, 0x42)
    r.msi(a, d)
    a, d = msi(3, 0x43)
    r.msi(a, d)
    a, d = msi(0x09, 0x44, dm=1, logical=1)
    r.msi(a, d)


# =====================================================================================
# irqfd
# =====================================================================================
@scenario("irqfd_route_changes_msi_to_ioapic", "irqfd",
          "irqfd A on GSI 24 (MSI dest 1 vector 0x45); write; reroute GSI 24 to IOAPIC pin 17 (edge, vector 0x47, dest 2); write; "
          "reroute to MSI dest 3 vector 0x49; write; remove GSI 24 from the table; write.", tags=["irqfd"])
def _(r):
    r.enable_lapics()
    r.redir(17, vector=0x47, dest=2)
    r.routing(route_default_plus(K.route_msi(24, K.msi_address(1), K.msi_data(0x45))))
    r.eventfd("A")
    r.start()
    r.irqfd("A", 24)
    r.efd_write("A")
    r.routing(route_default_plus(K.route_irqchip(24, 2, 17)))
    r.efd_write("A")
    r.routing(route_default_plus(K.route_msi(24, K.msi_address(3), K.msi_data(0x49))))
    r.efd_write("A")
    r.routing(K.default_routes())
    r.efd_write("A")
    r.efd_read("A")


@scenario("irqfd_deassign_then_write", "irqfd",
          "irqfd A on GSI 24 (MSI dest 2 vector 0x52): write, deassign, write (no injection), read the counter; reassign A on GSI 24 with the counter 1 pending.",
          tags=["irqfd"])
def _(r):
    r.enable_lapics()
    r.routing(route_default_plus(K.route_msi(24, K.msi_address(2), K.msi_data(0x52))))
    r.eventfd("A")
    r.start()
    r.irqfd("A", 24)
    r.efd_write("A")
    r.irqfd("A", 24, flags=K.KVM_IRQFD_FLAG_DEASSIGN)
    r.lapic(2, clear_irr=[0x52])
    r.efd_write("A")
    r.irqfd("A", 24)
    r.efd_read("A")
    r.irqfd("A", 25, flags=K.KVM_IRQFD_FLAG_DEASSIGN, note="deassign with wrong gsi")
    r.efd_write("A")


@scenario("irqfd_resample_deassign_lowers_line", "irqfd",
          "Resampling irqfd A (resamplefd RA) on level IOAPIC GSI 21 (vector 0x55 dest 0): write (asserted), deassign A "
          "(the line is lowered), ack+EOI; read RA.", tags=["irqfd", "resample", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(21, vector=0x55, trigger=1, dest=0)
    r.eventfd("A")
    r.eventfd("RA")
    r.start()
    r.irqfd("A", 21, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_write("A")
    r.observe("asserted")
    r.irqfd("A", 21, flags=K.KVM_IRQFD_FLAG_DEASSIGN)
    r.observe("deassigned")
    r.simulated_ack(0, 0x55)
    r.guest_eoi()
    r.wait(50)
    r.efd_read("RA")


@scenario("irqfd_resample_eoi_while_userspace_high", "irqfd",
          "Level GSI 22 (vector 0x56 dest 0): userspace raises it with KVM_IRQ_LINE_STATUS, a resampling irqfd A/RA is also written; "
          "ack+EOI -> resample lowers only the irqfd source, so the pin is re-delivered; userspace lowers; ack+EOI; read RA each time.",
          tags=["irqfd", "resample", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(22, vector=0x56, trigger=1, dest=0)
    r.eventfd("A")
    r.eventfd("RA")
    r.start()
    r.irqfd("A", 22, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.line(22, 1)
    r.efd_write("A")
    r.simulated_ack(0, 0x56)
    r.guest_eoi()
    r.wait(50)
    r.efd_read("RA")
    r.line(22, 0)
    r.simulated_ack(0, 0x56)
    r.guest_eoi()
    r.wait(50)
    r.efd_read("RA")


@scenario("irqfd_preset_counter_level_resample", "irqfd",
          "Eventfd A created with initval 3 assigned as a resampling irqfd on level GSI 23 (vector 0x57 dest 1): assignment injects; "
          "read A; a second irqfd B (no resample) on the same GSI written twice.", tags=["irqfd", "resample"])
def _(r):
    r.enable_lapics()
    r.redir(23, vector=0x57, trigger=1, dest=1)
    r.eventfd("A", 3)
    r.eventfd("RA")
    r.eventfd("B")
    r.start()
    r.irqfd("A", 23, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_read("A")
    r.irqfd("B", 23)
    r.efd_write("B")
    r.efd_write("B")
    r.efd_read("B")
    r.efd_read("RA")


@scenario("irqfd_on_gsi_without_route_then_added", "irqfd",
          "irqfd A on GSI 60 that has no route: write; install GSI 60 -> MSI dest 0 vector 0x3C; write; route GSI 60 to the PIC master pin 4 "
          "and IOAPIC pin 4 (unmasked edge vector 0x34 dest 1); write.", tags=["irqfd"])
def _(r):
    r.enable_lapics()
    r.redir(4, vector=0x34, dest=1)
    r.eventfd("A")
    r.start()
    r.irqfd("A", 60)
    r.efd_write("A")
    r.efd_read("A")
    r.routing(route_default_plus(K.route_msi(60, K.msi_address(0), K.msi_data(0x3C))))
    r.efd_write("A")
    r.routing(route_default_plus(K.route_irqchip(60, 0, 4), K.route_irqchip(60, 2, 4)))
    r.efd_write("A")
    r.efd_read("A")


@scenario("irqfd_resample_pic_level_eoi", "irqfd",
          "Resampling irqfd on GSI 5 (PIC IRQ 5 level through ELCR preset, IOAPIC pin 5 masked): write; guest poll acks IRQ 5; read RA; "
          "write again; guest non-specific EOI after an ISR preset; read RA.", tags=["irqfd", "resample", "guest"], guest=True)
def _(r):
    r.pic("master", elcr=0x20)
    r.eventfd("A")
    r.eventfd("RA")
    r.start()
    r.irqfd("A", 5, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_write("A")
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="poll")
    r.wait(50)
    r.efd_read("RA")
    r.efd_write("A")
    r.pic("master", isr=0x20)
    r.guest_access([("out", 0x20, 0x20)], note="non-specific EOI")
    r.wait(50)
    r.efd_read("RA")


# =====================================================================================
# misc: ioeventfd and error paths
# =====================================================================================
@scenario("ioeventfd_pio_lengths_datamatch", "misc",
          "PIO ioeventfds: port 0x600 len 1, same again (EEXIST), len 3 (EINVAL), port 0x600 len 1 datamatch 0x5A on another eventfd, "
          "deassign of a missing one, len 0 PIO; guest OUTs 0x5A, 0x11 to 0x600, an OUT to 0x601, and INs.", tags=["ioeventfd", "guest"], guest=True)
def _(r):
    for n in ("A", "B", "C", "D"):
        r.eventfd(n)
    r.start()
    r.ioeventfd("A", 0x600, 1)
    r.ioeventfd("A", 0x600, 1)
    r.ioeventfd("B", 0x600, 3)
    r.ioeventfd("B", 0x600, 1, datamatch=0x5A)
    r.ioeventfd("C", 0x602, 2, deassign=True)
    r.ioeventfd("C", 0x610, 0)
    r.ioeventfd("D", 0x608, 8)
    r.guest_access([("out", 0x600, 0x5A), ("out", 0x600, 0x11), ("out", 0x601, 0x5A), ("in", 0x600, 0), ("out", 0x610, 1),
                    ("out", 0x608, 2)], note="OUTs and IN")
    for n in ("A", "B", "C", "D"):
        r.efd_read(n)
    r.ioeventfd("A", 0x600, 1, deassign=True)
    r.guest_access([("out", 0x600, 0x5A)], note="after deassign A")
    r.efd_read("A")
    r.efd_read("B")


@scenario("ioeventfd_mmio_overlap_and_len0", "misc",
          "MMIO ioeventfds at 0xD0000000: len 4 (A), len 4 datamatch 7 (B), len 0 at 0xD0000010 (C), len 8 at 0xD0000020 (D), "
          "len 4 at 0xD0000002 (E, overlapping A); guest 32-bit writes and a read.", tags=["ioeventfd", "guest"], guest=True)
def _(r):
    for n in ("A", "B", "C", "D", "E"):
        r.eventfd(n)
    r.start()
    base = 0xD0000000
    r.ioeventfd("A", base, 4, pio=False)
    r.ioeventfd("B", base, 4, pio=False, datamatch=7)
    r.ioeventfd("C", base + 0x10, 0, pio=False)
    r.ioeventfd("D", base + 0x20, 8, pio=False)
    r.ioeventfd("E", base + 2, 4, pio=False)
    r.ioeventfd("B", base, 4, pio=False, datamatch=7)
    r.ioeventfd("B", base, 2, pio=False, datamatch=7)
    r.guest_access([("mmio_write", base, 7), ("mmio_write", base, 1), ("mmio_write", base + 0x10, 0x99), ("mmio_write", base + 0x20, 3),
                    ("mmio_write", base + 2, 5), ("mmio_read", base, 0)], note="writes and a read")
    for n in ("A", "B", "C", "D", "E"):
        r.efd_read(n)


@scenario("ioeventfd_on_lapic_and_pic_ports", "misc",
          "ioeventfd on PIO port 0x21 (PIC IMR) len 1 and on MMIO 0xFEC00000 len 4 (IOAPIC IOREGSEL); guest writes both and reads IMR back.",
          tags=["ioeventfd", "guest"], guest=True)
def _(r):
    r.eventfd("A")
    r.eventfd("B")
    r.start()
    r.ioeventfd("A", 0x21, 1)
    r.ioeventfd("B", 0xFEC00000, 4, pio=False)
    r.guest_access([("out", 0x21, 0x55), ("in", 0x21, 0), ("mmio_write", SEL, 0x01), ("mmio_read", WIN, 0)], note="PIC IMR and IOAPIC")
    r.efd_read("A")
    r.efd_read("B")


@scenario("misc_irq_line_large_and_negative_levels", "misc",
          "KVM_IRQ_LINE_STATUS with levels on GSI 0 (PIT pin: PIC 0 + IOAPIC pin 2? default routing -> IOAPIC pin 0), GSI 2 (cascade pin), "
          "GSI 8 and GSI 23, IOAPIC pins unmasked to dest 0.", tags=[])
def _(r):
    r.enable_lapics()
    r.redir(0, vector=0x30, dest=0)
    r.redir(2, vector=0x32, dest=0)
    r.redir(8, vector=0x38, dest=0)
    r.start()
    for g in (0, 2, 8, 23):
        r.line(g, 1)
        r.line(g, 1)
        r.line(g, 0)
    r.line(8, 1)


@scenario("misc_set_get_irqchip_errors", "misc",
          "KVM_GET_IRQCHIP/KVM_SET_IRQCHIP with chip ids 3 and 0xFFFFFFFF, a second KVM_CREATE_IRQCHIP; PIC state with init_state and "
          "read_reg_select via KVM_SET_IRQCHIP, then a guest read of port 0x20.", tags=["guest"], guest=True)
def _(r):
    r.start()
    for chip in (3, 0xFFFFFFFF):
        ret, _raw = r.vm.get_irqchip_raw(chip)
        r.raw("get_irqchip", {"chip_id": chip}, ret)
        _r0, raw = r.vm.get_irqchip_raw(0)
        r.raw("set_irqchip", {"chip_id": chip}, r.vm.set_irqchip_raw(chip, raw))
    r.raw("create_irqchip", {}, K.raw_ioctl(r.vm.fd, K.KVM_CREATE_IRQCHIP))
    r.line(3, 1)
    r.pic("master", read_reg_select=1)
    r.guest_access([("in", 0x20, 0)], note="read with read_reg_select=1 (ISR)")
    r.pic("master", poll=1)
    r.guest_access([("in", 0x20, 0), ("in", 0x20, 0)], note="read with poll=1 preset")


# =====================================================================================
# second batch
# =====================================================================================
@scenario("ioeventfd_len0_on_ioapic_window", "misc",
          "MMIO ioeventfds of length 0 at 0xFEC00000 (IOREGSEL) and 0xFEC00010 (IOWIN), and length 4 at 0xFEC000FC and 0xFEC00100; "
          "guest writes/reads there, including a 4-byte write at 0xFEC000FE.", tags=["ioeventfd", "guest"], guest=True)
def _(r):
    for n in ("A", "B", "C", "D"):
        r.eventfd(n)
    r.start()
    r.ioeventfd("A", 0xFEC00000, 0, pio=False)
    r.ioeventfd("B", 0xFEC00010, 0, pio=False)
    r.ioeventfd("C", 0xFEC000FC, 4, pio=False)
    r.ioeventfd("D", 0xFEC00100, 4, pio=False)
    r.guest_access([("mmio_write", SEL, 1), ("mmio_read", WIN, 0), ("mmio_write", WIN, 0x1234), ("mmio_read", SEL, 0),
                    ("mmio_write", 0xFEC000FC, 1), ("mmio_write", 0xFEC000FE, 2), ("mmio_write", 0xFEC00100, 3),
                    ("mmio_read", 0xFEC00020, 0), ("mmio_write", 0xFEC00004, 0x55), ("mmio_read", SEL, 0)], note="accesses")
    for n in ("A", "B", "C", "D"):
        r.efd_read(n)
    r.ioeventfd("A", 0xFEC00000, 0, pio=False, deassign=True)
    r.guest_access([("mmio_write", SEL, 2), ("mmio_read", WIN, 0)], note="after deassign A")
    r.efd_read("A")


@scenario("ioeventfd_pio_overlapping_pic_and_len", "misc",
          "PIO ioeventfds: 0x20 len 2 datamatch 0x0C0C? (A), 0x4D0 len 1 (B), 0xA1 len 0 (C), 0x700 len 2 (D), 0x700 len 4 datamatch 1 (E), "
          "0x6FF len 1 (F); guest OUTs to each and IN from 0xA1.", tags=["ioeventfd", "guest"], guest=True)
def _(r):
    for n in ("A", "B", "C", "D", "E", "F"):
        r.eventfd(n)
    r.start()
    r.ioeventfd("A", 0x20, 2, datamatch=0x0C0C)
    r.ioeventfd("B", 0x4D0, 1)
    r.ioeventfd("C", 0xA1, 0)
    r.ioeventfd("D", 0x700, 2)
    r.ioeventfd("E", 0x700, 4, datamatch=1)
    r.ioeventfd("F", 0x6FF, 1)
    r.guest_access([("out", 0x4D0, 0x08), ("in", 0x4D0, 0), ("out", 0xA1, 0x33), ("in", 0xA1, 0), ("out", 0x700, 1),
                    ("out", 0x6FF, 1), ("out", 0x20, 0x0B), ("in", 0x20, 0), ("out", 0x21, 0x12), ("in", 0x21, 0)], note="accesses")
    for n in ("A", "B", "C", "D", "E", "F"):
        r.efd_read(n)


@scenario("ioeventfd_on_lapic_page", "misc",
          "MMIO ioeventfd at 0xFEE000B0 (LAPIC EOI) len 4 and at 0xFEE00400 (past the LAPIC registers) len 4; vCPU0 ISR {0x40}: guest EOI and a write at 0xFEE00400; "
          "then vCPU0's LAPIC is hardware-disabled (APIC base) and the guest writes/reads there again.", tags=["ioeventfd", "guest"], guest=True)
def _(r):
    r.eventfd("A")
    r.eventfd("B")
    r.lapic(0, enable=True, isr=[0x40])
    r.start()
    r.ioeventfd("A", 0xFEE000B0, 4, pio=False)
    r.ioeventfd("B", 0xFEE00400, 4, pio=False)
    r.guest_access([("mmio_write", EOI, 0), ("mmio_write", 0xFEE00400, 1), ("mmio_read", 0xFEE00400, 0), ("mmio_read", 0xFEE00FF0, 0)], note="EOI, past-regs")
    r.efd_read("A")
    r.efd_read("B")
    r.set_msr(0, K.MSR_IA32_APICBASE, 0xFEE00100)
    r.guest_access([("mmio_write", EOI, 0), ("mmio_read", 0xFEE00030, 0), ("mmio_write", 0xFEE00400, 1)], note="hw-disabled LAPIC")
    r.efd_read("A")
    r.efd_read("B")


@scenario("lapic_register_sweep_reads", "lapic",
          "Guest reads every 16-byte LAPIC register offset 0x000..0x3F0 of vCPU0 (software-enabled, TPR 0x20, ISR {0x55}, IRR {0x66}, TMR {0x55}), "
          "plus unaligned reads at 0x021, 0x082 and 0x0F4.", tags=["guest"], guest=True)
def _(r):
    r.lapic(0, enable=True, tpr=0x20, isr=[0x55], irr=[0x66], tmr=[0x55])
    r.start()
    acc = [("mmio_read", 0xFEE00000 + off, 0) for off in range(0, 0x200, 0x10)]
    r.guest_access(acc, note="0x000-0x1F0")
    acc = [("mmio_read", 0xFEE00000 + off, 0) for off in range(0x200, 0x400, 0x10)]
    acc += [("mmio_read", 0xFEE00021, 0), ("mmio_read", 0xFEE00082, 0), ("mmio_read", 0xFEE000F4, 0)]
    r.guest_access(acc, note="0x200-0x3F0 and unaligned")


@scenario("lapic_register_writes_masks", "lapic",
          "Guest writes 0xFFFFFFFF to ID, TPR, LDR, DFR, SPIV, ESR, LVTT, LVTTHMR, LVTPC, LVT0, LVT1, LVTERR, TMICT?(no: TDCR), "
          "and to read-only LVR/PPR/ISR/TMR/IRR/APR offsets; reads each back.", tags=["guest"], guest=True)
def _(r):
    r.lapic(0, enable=True)
    r.start()
    for off in (0x20, 0x30, 0x80, 0x90, 0xA0, 0xD0, 0xE0, 0x100, 0x180, 0x200, 0x280):
        r.guest_access([("mmio_write", 0xFEE00000 + off, 0xFFFFFFFF), ("mmio_read", 0xFEE00000 + off, 0)], note="reg %#x" % off)
    acc = []
    for off in (0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x3E0):
        acc += [("mmio_write", 0xFEE00000 + off, 0xFFFFFFFF), ("mmio_read", 0xFEE00000 + off, 0)]
    r.guest_access(acc, note="LVTs and TDCR all ones")
    acc = []
    for off in (0x320, 0x350, 0x360, 0x370):
        acc += [("mmio_write", 0xFEE00000 + off, 0x0000A7FF), ("mmio_read", 0xFEE00000 + off, 0)]
    r.guest_access(acc, note="LVTs unmasked with mode/trigger bits")
    r.guest_access([("mmio_write", SPIV, 0xFFFFFFFF), ("mmio_read", SPIV, 0), ("mmio_write", SPIV, 0x1FF), ("mmio_read", LVT0, 0)],
                   note="SPIV all ones")


@scenario("lapic_icr_shorthand_lowest_priority", "lapic",
          "Guest ICR IPIs with shorthands and lowest-priority/fixed modes: all-excluding-self lowest vectors 0x80..0x85, all-including-self "
          "lowest 0x86..0x88, self lowest 0x89, with vCPU2 software-disabled; ICR2 is 0xFF000000.", tags=["guest", "ipi"], guest=True)
def _(r):
    r.enable_lapics([0, 1, 3])
    r.start()
    acc = [("mmio_write", ICR2, 0xFF000000)]
    for v in range(0x80, 0x86):
        acc.append(("mmio_write", ICR, 0xC4100 | v))
    r.guest_access(acc, note="all-excluding-self lowest")
    acc = [("mmio_write", ICR, 0x84100 | v) for v in range(0x86, 0x89)]
    r.guest_access(acc, note="all-including-self lowest")
    r.guest_access([("mmio_write", ICR, 0x44100 | 0x89), ("mmio_read", ICR, 0)], note="self lowest")


@scenario("lapic_icr_init_sipi_deassert", "lapic",
          "Guest ICR: INIT level-deassert (0x8500) to APIC 2, INIT assert (0xC500) to APIC 2, SIPI 0x12 to APIC 2 and APIC 3; "
          "KVM_GET_MP_STATE(2) and (3); vCPU events; an NMI IPI to logical dest 0x0A.", tags=["guest", "ipi"], guest=True)
def _(r):
    r.flat_ldrs()
    r.start()
    r.guest_access([("mmio_write", ICR2, 2 << 24), ("mmio_write", ICR, 0x8500)], note="INIT deassert to 2")
    r.observe("after INIT deassert")
    r.guest_access([("mmio_write", ICR, 0xC500)], note="INIT assert to 2")
    r.guest_access([("mmio_write", ICR, 0x4612), ("mmio_write", ICR2, 3 << 24), ("mmio_write", ICR, 0x4612)], note="SIPI to 2 and 3")
    r.mp_state(2)
    r.mp_state(3)
    r.guest_access([("mmio_write", ICR2, 0x0A << 24), ("mmio_write", ICR, 0x4C00)], note="NMI logical 0x0A")


@scenario("lapic_nmi_pending_limits", "lapic",
          "KVM_SIGNAL_MSI NMI three times to APIC 1 and APIC 0; then the guest on vCPU0 runs (takes the NMI) and a fourth NMI is sent to APIC 0; "
          "the guest runs again.", tags=["guest"], guest=True)
def _(r):
    r.enable_lapics()
    r.start()
    a1, d = msi(1, 0, dm=4)
    a0, _d = msi(0, 0, dm=4)
    for _i in range(3):
        r.msi(a1, d)
        r.msi(a0, d)
    r.observe("3 NMIs each")
    r.guest_access([("mmio_read", TPR, 0)], note="run vCPU0")
    r.msi(a0, d)
    r.guest_access([("mmio_read", TPR, 0)], note="run vCPU0 again")


@scenario("lapic_apic_base_relocate_and_reenable", "lapic",
          "vCPU1's xAPIC ID set to 7 by KVM_SET_LAPIC, then its APIC base MSR is hardware-disabled and re-enabled; MSI to 7 and 1. "
          "vCPU0's LAPIC relocated to 0xFEB00000; guest reads its version there and at 0xFEE00030.", tags=["guest"], guest=True)
def _(r):
    r.enable_lapics()
    r.start()
    r.lapic(1, apic_id=7)
    a, d = msi(7, 0x47)
    r.msi(a, d)
    r.set_msr(1, K.MSR_IA32_APICBASE, 0xFEE00000)
    r.set_msr(1, K.MSR_IA32_APICBASE, 0xFEE00800)
    a, d = msi(7, 0x48)
    r.msi(a, d)
    a, d = msi(1, 0x49)
    r.msi(a, d)
    r.set_msr(0, K.MSR_IA32_APICBASE, 0xFEB00900)
    r.guest_access([("mmio_read", 0xFEB00030, 0), ("mmio_read", 0xFEE00030, 0), ("mmio_write", 0xFEB00080, 0x30), ("mmio_read", 0xFEB000A0, 0)],
                   note="relocated LAPIC")
    r.set_msr(2, K.MSR_IA32_APICBASE, 0xFEE00C00)
    r.set_msr(2, K.MSR_IA32_APICBASE, 0xFEE00400)


@scenario("lapic_mixed_dfr_slow_path_lowest", "lapic",
          "vCPU0/1 flat (LDR bit 0/1), vCPU2/3 cluster (LDR 0x11, 0x12): the APIC map is disabled for logical dests. MSI lowest-priority and fixed "
          "to logical 0x03, 0x11, 0x13, 0xFF with several vectors.", tags=[])
def _(r):
    r.lapic(0, enable=True, ldr=0x01000000, dfr=K.APIC_DFR_FLAT)
    r.lapic(1, enable=True, ldr=0x02000000, dfr=K.APIC_DFR_FLAT)
    r.lapic(2, enable=True, ldr=0x11000000, dfr=K.APIC_DFR_CLUSTER)
    r.lapic(3, enable=True, ldr=0x12000000, dfr=K.APIC_DFR_CLUSTER)
    r.start()
    for dst in (0x03, 0x11, 0x13, 0xFF):
        for v in (0x70, 0x71, 0x72):
            a, d = msi(dst, v, dm=1, logical=1)
            r.msi(a, d)
        a, d = msi(dst, 0x73, logical=1)
        r.msi(a, d)


@scenario("lapic_logical_broadcast_lowest_disabled_mix", "lapic",
          "Flat LDRs, vCPU1 software-disabled, vCPU3 hardware-disabled: MSI lowest-priority logical 0xFF with vectors 0x90..0x95, "
          "lowest logical 0x0F 0x96..0x99, and physical 0xFF lowest 0x9A.", tags=[])
def _(r):
    r.flat_ldrs()
    r.lapic(1, enable=False)
    r.set_msr(3, K.MSR_IA32_APICBASE, 0xFEE00000)
    r.start()
    for v in range(0x90, 0x96):
        a, d = msi(0xFF, v, dm=1, logical=1)
        r.msi(a, d)
    for v in range(0x96, 0x9A):
        a, d = msi(0x0F, v, dm=1, logical=1)
        r.msi(a, d)
    a, d = msi(0xFF, 0x9A, dm=1)
    r.msi(a, d)


@scenario("ioapic_rtc_logical_two_dest_tracking", "ioapic",
          "GSI 8 (IOAPIC pin 8 edge, vector 0x48, logical flat dest 0x03: vCPU0 and vCPU1; PIC slave pin 0 masked) raised with "
          "KVM_IRQ_LINE_STATUS; vCPU0 acks+EOIs; raise again; vCPU1's IRR bit cleared by KVM_SET_LAPIC; raise again; also GSI 40 -> pin 8.",
          tags=["rtc", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.flat_ldrs()
    r.redir(8, vector=0x48, dest_mode=1, dest=0x03)
    r.routing(route_default_plus(K.route_irqchip(40, 2, 8)))
    r.start()
    r.line(8, 1)
    r.line(8, 0)
    r.simulated_ack(0, 0x48)
    r.guest_eoi()
    r.line(8, 1)
    r.line(8, 0)
    r.lapic(1, clear_irr=[0x48])
    r.line(40, 1)
    r.line(40, 0)
    r.line(8, 1)


@scenario("ioapic_level_lowest_priority_eoi", "ioapic",
          "Level pin 22 lowest-priority logical flat 0x0F vector 0x62: raise; the chosen vCPU acks (simulated) - EOI done by vCPU0's guest "
          "only if vCPU0 was chosen, else observe remote_irr stays; KVM_SET_LAPIC moves the vector to vCPU0's ISR with TMR; guest EOI.",
          tags=["guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.flat_ldrs()
    r.redir(22, vector=0x62, delivery_mode=1, trigger=1, dest_mode=1, dest=0x0F)
    r.start()
    r.line(22, 1)
    r.observe("delivered")
    r.lapic(0, isr=[0x62], tmr=[0x62])
    r.guest_eoi()
    r.line(22, 0)
    r.line(22, 1)


@scenario("pic_icw4_sfnm_and_ltim", "pic",
          "Guest initialises the master with ICW1 0x19 (LTIM + IC4), ICW2 0x40, ICW3 0x04, ICW4 0x13 (SFNM + AEOI + 8086); slave with ICW1 0x13 "
          "(single + IC4), ICW2 0x48, ICW4 0x01. IRQ 10 and IRQ 3 raised; master poll, slave poll.", tags=["guest"], guest=True)
def _(r):
    r.start()
    r.guest_access([("out", 0x20, 0x19), ("out", 0x21, 0x40), ("out", 0x21, 0x04), ("out", 0x21, 0x13)], note="master init")
    r.guest_access([("out", 0xA0, 0x13), ("out", 0xA1, 0x48), ("out", 0xA1, 0x01)], note="slave init (single mode: no ICW3)")
    r.observe("after init")
    r.line(10, 1)
    r.line(3, 1)
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0), ("out", 0xA0, 0x0C), ("in", 0xA0, 0), ("in", 0xA1, 0)], note="polls")


@scenario("pic_slave_special_fully_nested_isr", "pic",
          "Master special_fully_nested_mode=1 with ISR bit 2 set (a slave IRQ in service) and slave ISR bit 1 (IRQ 9); raise IRQ 12 (higher? lower priority) "
          "and IRQ 8 (higher): master and slave polls.", tags=["guest"], guest=True)
def _(r):
    r.pic("master", special_fully_nested_mode=1, isr=0x04)
    r.pic("slave", isr=0x02)
    r.start()
    r.line(12, 1)
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="master poll with IRQ12 pending")
    r.line(8, 1)
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0), ("out", 0xA0, 0x0C), ("in", 0xA0, 0), ("out", 0xA0, 0x0C), ("in", 0xA0, 0)],
                   note="master poll, slave polls")


@scenario("irqfd_resample_gsi_both_pic_and_ioapic", "irqfd",
          "Resampling irqfd A/RA on GSI 4 with default routing: PIC IRQ 4 level (ELCR) unmasked and IOAPIC pin 4 level unmasked (vector 0x34, dest 0). "
          "Write A; IOAPIC ack+EOI; read RA; write A again; PIC poll; read RA.", tags=["irqfd", "resample", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.pic("master", elcr=0x10)
    r.redir(4, vector=0x34, trigger=1, dest=0)
    r.eventfd("A")
    r.eventfd("RA")
    r.start()
    r.irqfd("A", 4, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_write("A")
    r.observe("asserted")
    r.simulated_ack(0, 0x34)
    r.guest_eoi()
    r.wait(50)
    r.efd_read("RA")
    r.efd_write("A")
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="PIC poll")
    r.wait(50)
    r.efd_read("RA")


@scenario("irqfd_resample_msi_and_reroute", "irqfd",
          "Resampling irqfd A/RA on GSI 24 routed to MSI (dest 1, vector 0x44): write twice; reroute GSI 24 to IOAPIC pin 20 (level, vector 0x50, dest 0); "
          "write; ack+EOI; read RA; deassign with flags DEASSIGN|RESAMPLE.", tags=["irqfd", "resample", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(20, vector=0x50, trigger=1, dest=0)
    r.routing(route_default_plus(K.route_msi(24, K.msi_address(1), K.msi_data(0x44))))
    r.eventfd("A")
    r.eventfd("RA")
    r.start()
    r.irqfd("A", 24, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_write("A")
    r.efd_write("A")
    r.efd_read("RA")
    r.routing(route_default_plus(K.route_irqchip(24, 2, 20)))
    r.efd_write("A")
    r.observe("rerouted")
    r.simulated_ack(0, 0x50)
    r.guest_eoi()
    r.wait(50)
    r.efd_read("RA")
    r.irqfd("A", 24, flags=K.KVM_IRQFD_FLAG_DEASSIGN | K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_write("A")


@scenario("msi_level_deassert_and_lowest_phys", "msi_routing",
          "KVM_SIGNAL_MSI level-triggered with the assert bit clear (data bit 14 = 0), lowest-priority physical dest 2 and 0 (vCPU0 TPR 0xF0), "
          "ExtINT and SMI physical broadcast.", tags=[])
def _(r):
    r.enable_lapics()
    r.lapic(0, tpr=0xF0)
    r.start()
    r.msi(K.msi_address(1), K.msi_data(0x51, 0, 1, 0))
    r.msi(K.msi_address(1), K.msi_data(0x52, 0, 0, 0))
    a, d = msi(2, 0x53, dm=1)
    r.msi(a, d)
    a, d = msi(0, 0x54, dm=1)
    r.msi(a, d)
    a, d = msi(0xFF, 0x55, dm=7)
    r.msi(a, d)
    a, d = msi(0xFF, 0x56, dm=2)
    r.msi(a, d)


# =====================================================================================
# third batch
# =====================================================================================
@scenario("lapic_init_bsp_resets_state", "lapic",
          "vCPU0 (BSP) and vCPU1 with TPR, ISR/IRR, LDR, ID changed (vCPU1 -> 9), LVT0 written, NMI pending; MSI INIT to both; "
          "KVM_GET_MP_STATE processes INIT (LAPIC reset); then MSI fixed to 0, 1 and 9.", tags=[])
def _(r):
    r.flat_ldrs()
    r.lapic(0, tpr=0x40, isr=[0x61], irr=[0x71], lvt0=0x700)
    r.lapic(1, tpr=0x50, irr=[0x72], apic_id=9, lvt0=0x400)
    r.start()
    a, d = msi(1, 0, dm=4)
    r.msi(a, d)
    a, d = msi(0, 0, dm=5)
    r.msi(a, d)
    a, d = msi(9, 0, dm=5)
    r.msi(a, d)
    r.observe("INIT latched")
    r.mp_state(0)
    r.mp_state(1)
    for dst, v in ((0, 0x41), (1, 0x42), (9, 0x43)):
        a, d = msi(dst, v)
        r.msi(a, d)


@scenario("lapic_eight_vcpus_flat_and_lowest", "lapic",
          "Eight vCPUs, flat LDR bit n: MSI logical fixed 0xF0, 0x81; lowest-priority 0xFF, 0xF0, 0x3C with several vectors; "
          "vCPU5 software-disabled.", tags=[], nvcpus=8)
def _(r):
    r.flat_ldrs()
    r.lapic(5, enable=False)
    r.start()
    a, d = msi(0xF0, 0x40, logical=1)
    r.msi(a, d)
    a, d = msi(0x81, 0x41, logical=1)
    r.msi(a, d)
    for dst in (0xFF, 0xF0, 0x3C):
        for v in (0x50, 0x53, 0x55, 0x57):
            a, d = msi(dst, v, dm=1, logical=1)
            r.msi(a, d)


@scenario("lapic_single_vcpu_msi_and_ipi", "lapic",
          "One vCPU: MSI to physical 0, 1, 0xFF; logical flat 0x01/0xFF after the guest writes LDR; self IPI; all-excluding-self IPI.",
          tags=["guest", "ipi"], nvcpus=1, guest=True)
def _(r):
    r.lapic(0, enable=True)
    r.start()
    for dst, v in ((0, 0x40), (1, 0x41), (0xFF, 0x42)):
        a, d = msi(dst, v)
        r.msi(a, d)
    r.guest_access([("mmio_write", LDR, 0x01000000)], note="LDR bit 0")
    a, d = msi(0x01, 0x43, logical=1)
    r.msi(a, d)
    a, d = msi(0xFF, 0x44, dm=1, logical=1)
    r.msi(a, d)
    r.guest_access([("mmio_write", ICR, 0x40045), ("mmio_write", ICR, 0xC0046)], note="self, all-excluding-self")


@scenario("lapic_guest_id_write_then_msi", "lapic",
          "vCPU0's guest writes its xAPIC ID register to 0x05000000, then 0x01FFFFFF (aliasing vCPU1); MSI to 0, 5, 1 after each.",
          tags=["guest"], guest=True)
def _(r):
    r.enable_lapics()
    r.start()
    r.guest_access([("mmio_write", LID, 0x05000000), ("mmio_read", LID, 0)], note="ID 5")
    for dst, v in ((0, 0x40), (5, 0x41)):
        a, d = msi(dst, v)
        r.msi(a, d)
    r.guest_access([("mmio_write", LID, 0x01FFFFFF), ("mmio_read", LID, 0)], note="ID 1 (alias)")
    for dst, v in ((1, 0x42), (0, 0x43), (2, 0x44)):
        a, d = msi(dst, v)
        r.msi(a, d)


@scenario("ioapic_rtc_level_and_disabled_dest", "ioapic",
          "IOAPIC pin 8 level (vector 0x58, dest 0): KVM_IRQ_LINE_STATUS raise, raise, ack + EOI while high (re-delivery), raise, lower, "
          "ack + EOI, raise; then pin 8 edge to software-disabled vCPU3: raise, lower, raise.", tags=["rtc", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics([0, 1, 2])
    r.redir(8, vector=0x58, trigger=1, dest=0)
    r.start()
    r.line(8, 1)
    r.line(8, 1)
    r.simulated_ack(0, 0x58)
    r.guest_eoi()
    r.line(8, 1)
    r.line(8, 0)
    r.simulated_ack(0, 0x58)
    r.guest_eoi()
    r.line(8, 1)
    r.line(8, 0)
    r.redir(8, vector=0x59, dest=3)
    r.line(8, 1)
    r.line(8, 0)
    r.line(8, 1)


@scenario("ioapic_eoi_masked_pin_line_high", "ioapic",
          "Level pins 18 and 19 share vector 0x44 (dest 0); both raised and delivered? pin 19 is masked after delivery by the guest, "
          "then ack+EOI: pin 18 re-delivered, pin 19 not; unmask pin 19 by the guest.", tags=["guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(18, vector=0x44, trigger=1, dest=0)
    r.redir(19, vector=0x44, trigger=1, dest=0)
    r.start()
    r.line(18, 1)
    r.line(19, 1)
    r.guest_access(io_write_redir(19, 0x18044), note="mask pin 19")
    r.simulated_ack(0, 0x44)
    r.guest_eoi()
    r.guest_access(io_write_redir(19, 0x8044), note="unmask pin 19")
    r.simulated_ack(0, 0x44)
    r.guest_eoi()


@scenario("ioapic_dest_change_high_half_while_pending", "ioapic",
          "Level pin 21 (vector 0x65) masked with the line high; the guest writes the high half (dest 2) then unmasks the low half; "
          "then changes the dest to 3 while remote_irr is set; ack on vCPU2 via KVM_SET_LAPIC and a broadcast EOI from vCPU0 (vector also in vCPU0 ISR/TMR).",
          tags=["guest", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(21, vector=0x65, trigger=1, mask=1, dest=0)
    r.start()
    r.line(21, 1)
    r.guest_access(io_write_redir(21, 0x18065, 0x02000000), note="dest 2, still masked")
    r.guest_access(io_write_redir(21, 0x8065), note="unmask")
    r.guest_access(io_write_redir(21, 0x8065, 0x03000000), note="dest 3 while remote_irr")
    r.simulated_ack(2, 0x65)
    r.lapic(0, isr=[0x65], tmr=[0x65])
    r.guest_eoi()
    r.line(21, 0)


@scenario("ioapic_set_irqchip_clears_remote_irr_line_high", "ioapic",
          "Level pin 17 (vector 0x57 dest 1) raised (remote_irr=1, line high); KVM_SET_IRQCHIP rewrites pin 17 with remote_irr 0 and irr as read; "
          "then with irr 0; then with a new vector 0x58 and irr bit 17.", tags=[])
def _(r):
    r.enable_lapics()
    r.redir(17, vector=0x57, trigger=1, dest=1)
    r.start()
    r.line(17, 1)
    r.ioapic({17: dict(vector=0x57, trigger=1, dest=1, remote_irr=0)})
    r.ioapic({17: dict(vector=0x57, trigger=1, dest=1, remote_irr=0)}, irr=0)
    r.line(17, 1)
    r.ioapic({17: dict(vector=0x58, trigger=1, dest=1, remote_irr=0)}, irr=1 << 17)
    r.line(17, 0)


@scenario("ioapic_extint_pin0_with_pic", "ioapic",
          "IOAPIC pin 0 ExtINT (mode 7) dest 0 unmasked, PIC IRQ 0 unmasked, vCPU0 LVT0 ExtINT: raise/lower GSI 0 (default route PIC 0 + IOAPIC 0); "
          "pin 2 fixed vector 0x32 dest 0: raise GSI 2.", tags=[])
def _(r):
    r.enable_lapics()
    r.lapic(0, lvt0=0x700)
    r.redir(0, vector=0x30, delivery_mode=7, dest=0)
    r.redir(2, vector=0x32, dest=0)
    r.start()
    r.line(0, 1)
    r.line(0, 0)
    r.line(0, 1)
    r.line(2, 1)
    r.line(2, 0)
    r.line(2, 1)


@scenario("irqfd_level_pin_without_resample", "irqfd",
          "irqfd A (no resample) on level IOAPIC GSI 19 (vector 0x49 dest 0): write 5 (one pulse), ack+EOI (no re-delivery, line low), write again; "
          "irqfd B on GSI 5000 (beyond the table): write.", tags=["irqfd", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(19, vector=0x49, trigger=1, dest=0)
    r.eventfd("A")
    r.eventfd("B")
    r.start()
    r.irqfd("A", 19)
    r.efd_write("A", 5)
    r.efd_read("A")
    r.simulated_ack(0, 0x49)
    r.guest_eoi()
    r.efd_write("A")
    r.irqfd("B", 5000)
    r.efd_write("B")
    r.efd_read("B")


@scenario("irqfd_resample_two_gsis_shared_resamplefd", "irqfd",
          "Resampling irqfds A (GSI 20) and B (GSI 21), both level to vCPU0 (vectors 0x60/0x61), sharing one resamplefd R; write both; "
          "ack+EOI 0x61 only; read R; ack+EOI 0x60; read R.", tags=["irqfd", "resample", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(20, vector=0x60, trigger=1, dest=0)
    r.redir(21, vector=0x61, trigger=1, dest=0)
    r.eventfd("A")
    r.eventfd("B")
    r.eventfd("R")
    r.start()
    r.irqfd("A", 20, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="R")
    r.irqfd("B", 21, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="R")
    r.efd_write("A")
    r.efd_write("B")
    r.simulated_ack(0, 0x61)
    r.guest_eoi()
    r.wait(50)
    r.efd_read("R")
    r.simulated_ack(0, 0x60)
    r.guest_eoi()
    r.wait(50)
    r.efd_read("R")


@scenario("misc_ioeventfd_invalid_args", "misc",
          "KVM_IOEVENTFD: addr 0xFFFFFFFFFFFFFFFF len 2 (overflow), flag 0x20, len 0 with DATAMATCH, the same eventfd at two addresses, "
          "PIO len 8 datamatch; guest writes to both addresses.", tags=["ioeventfd", "guest"], guest=True)
def _(r):
    r.eventfd("A")
    r.eventfd("B")
    r.start()
    r.log("ioeventfd", {"eventfd": "A", "addr": 0xFFFFFFFFFFFFFFFF, "len": 2, "pio": False, "datamatch": None, "deassign": False, "flags": 0},
          r._res(r.vm.ioeventfd(0xFFFFFFFFFFFFFFFF, 2, r.efds["A"], 0, 0)))
    r.log("ioeventfd", {"eventfd": "A", "addr": 0x640, "len": 1, "pio": True, "datamatch": None, "deassign": False, "flags": 0x22},
          r._res(r.vm.ioeventfd(0x640, 1, r.efds["A"], 0x22, 0)))
    r.ioeventfd("A", 0x640, 0, datamatch=1)
    r.ioeventfd("A", 0x640, 1)
    r.ioeventfd("A", 0x641, 1)
    r.ioeventfd("B", 0x648, 8, datamatch=0x12)
    r.guest_access([("out", 0x640, 1), ("out", 0x641, 2), ("out", 0x648, 0x12)], note="writes")
    r.efd_read("A")
    r.efd_read("B")


@scenario("pic_set_irqchip_init_state_and_icw_stream", "pic",
          "KVM_SET_IRQCHIP puts the master in init_state 1 (expecting ICW2) with init4=1; the guest writes 0x21 twice (ICW2, ICW4) and then OCW1; "
          "slave: init_state 2 with init4=0 then one write to 0xA1; IRR/IMR reads.", tags=["guest"], guest=True)
def _(r):
    r.pic("master", init_state=1, init4=1)
    r.pic("slave", init_state=2, init4=0)
    r.start()
    r.guest_access([("out", 0x21, 0x58), ("out", 0x21, 0x03), ("out", 0x21, 0xFB)], note="master ICW2, ICW4, OCW1")
    r.guest_access([("out", 0xA1, 0x02), ("in", 0xA1, 0), ("out", 0xA1, 0xFD), ("in", 0xA1, 0)], note="slave ICW3 then OCW1")
    r.observe("after")
    r.line(1, 1)
    r.line(9, 1)


@scenario("pic_priority_rotation_with_slave", "pic",
          "Slave IRQ 9 and master IRQ 1 and 5 pending; master priority_add preset 3 (IRQ 2 lowest) by KVM_SET_IRQCHIP; polls on the master "
          "return in rotated order; slave special mask with IMR.", tags=["guest"], guest=True)
def _(r):
    r.line(9, 1)
    r.line(1, 1)
    r.line(5, 1)
    r.pic("master", priority_add=3)
    r.start()
    for i in range(4):
        r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="master poll %d" % (i + 1))
    r.guest_access([("out", 0xA0, 0x0C), ("in", 0xA0, 0)], note="slave poll")


@scenario("msi_routing_gsi_pic_slave_only", "msi_routing",
          "Table: GSI 3 -> PIC slave pin 3 only, GSI 11 -> PIC master pin 3 only, GSI 12 -> IOAPIC pin 12 (edge, vector 0x4C, dest 0) + PIC slave pin 4; "
          "raise/lower each with KVM_IRQ_LINE_STATUS, IMR masks some.", tags=[])
def _(r):
    r.enable_lapics()
    r.redir(12, vector=0x4C, dest=0)
    r.pic("slave", imr=0x10)
    r.routing([K.route_irqchip(3, 1, 3), K.route_irqchip(11, 0, 3), K.route_irqchip(12, 2, 12), K.route_irqchip(12, 1, 4)])
    r.start()
    for g in (3, 11, 12):
        r.line(g, 1)
        r.line(g, 1)
        r.line(g, 0)


# =====================================================================================
# fourth batch: which EOIs reach the IOAPIC (ioapic_handled_vectors, KVM_REQ_SCAN_IOAPIC)
# =====================================================================================
@scenario("ioapic_eoi_vector_changed_by_guest_other_dest", "ioapic",
          "Level pin 18 (vector 0x70, dest 1) delivered (remote_irr=1). vCPU0 ISR/TMR hold 0x71 (KVM_SET_LAPIC); the guest runs, then rewrites "
          "pin 18 to vector 0x71 (still dest 1) and EOIs 0x71; then KVM_SET_IRQCHIP rewrites pin 18 unchanged and vCPU0 EOIs 0x71 again.",
          tags=["guest", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(18, vector=0x70, trigger=1, dest=1)
    r.line(18, 1)
    r.lapic(0, isr=[0x71], tmr=[0x71])
    r.start()
    r.guest_access([("mmio_read", TPR, 0)], note="run")
    r.guest_access(io_write_redir(18, 0x8071), note="vector 0x71, dest 1")
    r.guest_eoi()
    r.observe("after first EOI")
    r.ioapic({18: dict(vector=0x71, trigger=1, dest=1, remote_irr=1)})
    r.lapic(0, isr=[0x71], tmr=[0x71])
    r.guest_eoi()


@scenario("ioapic_eoi_vector_changed_by_guest_own_dest", "ioapic",
          "Like the other-dest case but pin 18 targets vCPU0 after the rewrite (dest 0 -> vector 0x71); and a lowest-priority pin 19 "
          "(vector 0x72, logical 0x02) rewritten to 0x73 while vCPU0 holds 0x73 in ISR.", tags=["guest", "eoi"], guest=True)
def _(r):
    r.flat_ldrs()
    r.redir(18, vector=0x70, trigger=1, dest=1)
    r.redir(19, vector=0x72, delivery_mode=1, trigger=1, dest_mode=1, dest=0x02)
    r.line(18, 1)
    r.line(19, 1)
    r.lapic(0, isr=[0x71, 0x73], tmr=[0x71, 0x73])
    r.start()
    r.guest_access([("mmio_read", TPR, 0)], note="run")
    r.guest_access(io_write_redir(18, 0x8071, 0x00000000), note="pin 18: vector 0x71, dest 0")
    r.guest_access(io_write_redir(19, 0x8973), note="pin 19: vector 0x73 lowest")
    r.guest_eoi(note="EOI (0x73)")
    r.guest_eoi(note="EOI (0x71)")


@scenario("ioapic_eoi_after_msi_same_vector", "ioapic",
          "Level pin 20 vector 0x66 dest 1 delivered; KVM_SIGNAL_MSI puts level vector 0x66 into vCPU0's IRR; vCPU0 acks (simulated) and EOIs; "
          "then the same after an edge MSI.", tags=["guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(20, vector=0x66, trigger=1, dest=1)
    r.start()
    r.line(20, 1)
    r.guest_access([("mmio_read", TPR, 0)], note="run")
    a, d = msi(0, 0x66, level=1)
    r.msi(a, d)
    r.simulated_ack(0, 0x66)
    r.guest_eoi()
    r.observe("after EOI")
    a, d = msi(0, 0x66)
    r.msi(a, d)
    r.simulated_ack(0, 0x66)
    r.lapic(0, tmr=[0x66])
    r.guest_eoi()


@scenario("ioapic_eoi_rtc_pending_other_vcpu", "ioapic",
          "RTC pin 8 edge vector 0x48 physical dest 1 raised with KVM_IRQ_LINE_STATUS (pending EOI on vCPU1); vCPU0 gets 0x48 in ISR by KVM_SET_LAPIC "
          "and EOIs it; raise again; then vCPU1's ISR/IRR cleared by KVM_SET_LAPIC; raise.", tags=["rtc", "guest", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(8, vector=0x48, dest=1)
    r.start()
    r.line(8, 1)
    r.line(8, 0)
    r.lapic(0, isr=[0x48])
    r.guest_eoi()
    r.line(8, 1)
    r.line(8, 0)
    r.lapic(1, clear_irr=[0x48])
    r.line(8, 1)


@scenario("irqfd_resample_edge_pin_eoi_other_vcpu", "irqfd",
          "Resampling irqfd A/RA on edge IOAPIC GSI 17 (vector 0x47, dest 1; the resampler's ack notifier makes pin 17 EOI-tracked): write A; "
          "vCPU0 gets 0x47 in ISR by KVM_SET_LAPIC and EOIs it; read RA; vCPU0 ISR 0x47 again without a new scan; EOI; read RA.",
          tags=["irqfd", "resample", "guest", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(17, vector=0x47, dest=1)
    r.eventfd("A")
    r.eventfd("RA")
    r.start()
    r.irqfd("A", 17, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_write("A")
    r.lapic(0, isr=[0x47])
    r.guest_eoi()
    r.wait(50)
    r.efd_read("RA")
    r.redir(17, vector=0x47, dest=2)
    r.guest_access([("mmio_read", TPR, 0)], note="run (scan)")
    r.lapic(0, isr=[0x47])
    r.guest_eoi()
    r.wait(50)
    r.efd_read("RA")


@scenario("pic_ocw_command_sweep", "pic",
          "Master ISR {0,3,6} and IRR {1,4} preset; guest OCW2 commands 0x40 (no-op), 0x61 (specific EOI of an idle IRQ), 0x66, 0xC5 (priority), "
          "0x20, OCW3 0x08 (no RR), 0x0B, 0x08, reads after each.", tags=["guest"], guest=True)
def _(r):
    r.line(1, 1)
    r.line(4, 1)
    r.pic("master", isr=0x49)
    r.start()
    acc = []
    for cmd in (0x40, 0x61, 0x66, 0xC5, 0x20):
        acc += [("out", 0x20, cmd), ("out", 0x20, 0x0B), ("in", 0x20, 0)]
    r.guest_access(acc, note="OCW2 sweep, ISR after each")
    r.guest_access([("out", 0x20, 0x08), ("in", 0x20, 0), ("out", 0x20, 0x0A), ("out", 0x20, 0x08), ("in", 0x20, 0)], note="OCW3 without RR")


@scenario("lapic_icr_misc_modes", "lapic",
          "Guest ICR: delivery mode 3 (remote read) to APIC 1, fixed to physical broadcast 0xFF with vCPU2 disabled, ExtINT to APIC 1, "
          "SMI to APIC 3, level-triggered fixed vector 0x55 to APIC 0 (self by dest) and its EOI with an IOAPIC level pin on 0x55.",
          tags=["guest", "ipi", "eoi"], guest=True)
def _(r):
    r.enable_lapics([0, 1, 3])
    r.redir(21, vector=0x55, trigger=1, dest=3, remote_irr=1)
    r.start()
    r.guest_access([("mmio_write", ICR2, 1 << 24), ("mmio_write", ICR, 0x4350)], note="remote read to 1")
    r.guest_access([("mmio_write", ICR2, 0xFF << 24), ("mmio_write", ICR, 0x4051)], note="fixed broadcast")
    r.guest_access([("mmio_write", ICR2, 1 << 24), ("mmio_write", ICR, 0x4752)], note="ExtINT to 1")
    r.guest_access([("mmio_write", ICR2, 3 << 24), ("mmio_write", ICR, 0x4253)], note="SMI to 3")
    r.guest_access([("mmio_write", ICR2, 0), ("mmio_write", ICR, 0xC055)], note="level fixed 0x55 to 0")
    r.simulated_ack(0, 0x55)
    r.guest_eoi()


# =====================================================================================
# fifth batch
# =====================================================================================
@scenario("routing_hv_sint_xen_s390_types", "msi_routing",
          "KVM_SET_GSI_ROUTING with the non-irqchip/non-MSI entry types: 3 (S390 adapter), 4 (Hyper-V SINT vcpu 0 sint 2), "
          "5 (Xen event channel port 3, vcpu 0, priority 0), each alone on GSI 40 together with the default table; raise/lower GSI 40 after each success; "
          "type 4 plus an MSI entry on the same GSI.", tags=[])
def _(r):
    import struct as st
    r.enable_lapics()
    r.start()
    s390 = {"gsi": 40, "type": 3, "flags": 0, "raw": st.pack("<QQQII", 0x1000, 0x2000, 0, 0, 1)}
    hv = {"gsi": 40, "type": 4, "flags": 0, "raw": st.pack("<II", 0, 2)}
    xen = {"gsi": 40, "type": 5, "flags": 0, "raw": st.pack("<III", 3, 0, 0)}
    for e in (s390, hv, xen):
        res = r.routing(K.default_routes() + [e])
        if res["errno"] is None:
            r.line(40, 1)
            r.line(40, 0)
    r.routing(K.default_routes() + [hv, K.route_msi(40, K.msi_address(1), K.msi_data(0x40))], note="HV SINT + MSI on GSI 40")
    r.routing(K.default_routes() + [dict(hv, gsi=41), K.route_irqchip(41, 2, 5)], note="HV SINT + IOAPIC pin on GSI 41")


@scenario("pic_poll_through_odd_port_and_elcr_change", "pic",
          "IRQ 3 and IRQ 9 pending; guest OCW3 poll then reads port 0x21 (poll result from the odd port); slave poll read from 0xA1; "
          "IRQ 5 level by ELCR port write while its line is high, then ELCR cleared again and the line lowered.", tags=["guest"], guest=True)
def _(r):
    r.line(3, 1)
    r.line(9, 1)
    r.start()
    r.guest_access([("out", 0x20, 0x0C), ("in", 0x21, 0), ("in", 0x21, 0)], note="poll via 0x21, then IMR")
    r.guest_access([("out", 0xA0, 0x0C), ("in", 0xA1, 0), ("in", 0x20, 0)], note="slave poll via 0xA1")
    r.line(5, 1)
    r.guest_access([("out", 0x4D0, 0x20), ("in", 0x4D0, 0)], note="ELCR IRQ5 level")
    r.line(5, 1)
    r.guest_access([("out", 0x4D0, 0x00)], note="ELCR cleared")
    r.line(5, 0)
    r.line(5, 1)


@scenario("msi_cluster_lowest_disabled_slot", "msi_routing",
          "Cluster DFR: vCPU0 LDR 0x11, vCPU1 0x12 (software-disabled), vCPU2 0x14, vCPU3 0x21: lowest-priority MSIs to 0x17, 0x13, 0x16, 0x1F, 0x31 "
          "with vectors 0x40..0x45, through MSI routes on GSI 24..29 raised by KVM_IRQ_LINE_STATUS.", tags=[])
def _(r):
    for c, ldr in enumerate((0x11, 0x12, 0x14, 0x21)):
        r.lapic(c, enable=(c != 1), ldr=ldr << 24, dfr=K.APIC_DFR_CLUSTER)
    dests = (0x17, 0x13, 0x16, 0x1F, 0x31, 0x17)
    ents = []
    for i, dst in enumerate(dests):
        a, d = msi(dst, 0x40 + i, dm=1, logical=1)
        ents.append(K.route_msi(24 + i, a, d))
    r.routing(route_default_plus(*ents))
    r.start()
    for i in range(len(dests)):
        r.line(24 + i, 1)
        r.line(24 + i, 0)


@scenario("irqfd_two_irqfds_one_eventfd_chain", "irqfd",
          "irqfd A on GSI 24 (MSI dest 0 vector 0x51) and irqfd B on GSI 24 too; A deassigned with the wrong flags (RESAMPLE|DEASSIGN); "
          "write A and B; KVM_IRQFD deassign B on GSI 25 (ignored gsi?); write B.", tags=["irqfd"])
def _(r):
    r.enable_lapics()
    r.routing(route_default_plus(K.route_msi(24, K.msi_address(0), K.msi_data(0x51)), K.route_msi(25, K.msi_address(1), K.msi_data(0x52))))
    r.eventfd("A")
    r.eventfd("B")
    r.start()
    r.irqfd("A", 24)
    r.irqfd("B", 24)
    r.irqfd("A", 24, flags=K.KVM_IRQFD_FLAG_DEASSIGN | K.KVM_IRQFD_FLAG_RESAMPLE)
    r.efd_write("A")
    r.efd_write("B")
    r.lapic(0, clear_irr=[0x51])
    r.irqfd("B", 25, flags=K.KVM_IRQFD_FLAG_DEASSIGN)
    r.efd_write("B")
    r.efd_read("A")
    r.efd_read("B")



@scenario("lapic_ppr_recomputed_at_entry_unless_extint", "lapic",
          "PIC IRQ 1 pending and unmasked (the PIC output is high, vCPU0 LVT0 ExtINT). KVM_SET_LAPIC gives vCPU0 ISR {0x34} (PPR stale at 0); "
          "the guest runs OUT 0x21 (IMR 0x00, output stays high); then masks IRQ 1 (output low); then runs again; then a KVM_SET_LAPIC "
          "with nothing changed and another run. PPR observed after each step.", tags=["guest"], guest=True)
def _(r):
    r.lapic(0, enable=True)
    r.line(1, 1)
    r.start()
    r.lapic(0, isr=[0x34])
    r.guest_access([("out", 0x21, 0x00)], note="run with the PIC output high")
    r.observe("ExtINT pending")
    r.guest_access([("out", 0x21, 0x02)], note="mask IRQ 1: output low")
    r.guest_access([("out", 0xA1, 0x00)], note="run again")
    r.observe("output low")
    r.lapic(0)
    r.guest_access([("out", 0xA1, 0x00)], note="run after KVM_SET_LAPIC")



@scenario("lapic_self_nmi_waits_for_next_kvm_run", "lapic",
          "The guest sends itself an NMI by ICR (0x40400), reads the LAPIC version twice, OUTs to unclaimed port 0x700 (exit to userspace, KVM_RUN "
          "again) and reads once more: the NMI is injected only at that next KVM_RUN entry, not between accesses the kernel handled.",
          tags=["guest", "ipi"], guest=True)
def _(r):
    r.enable_lapics()
    r.start()
    r.guest_access([("mmio_write", ICR, 0x40400), ("mmio_read", 0xFEE00030, 0), ("mmio_read", 0xFEE00030, 0), ("out", 0x700, 1),
                    ("mmio_read", 0xFEE00030, 0)], note="self NMI, reads, unclaimed OUT, read")
    r.guest_access([("mmio_read", 0xFEE00030, 0)], note="run (NMIs blocked)")



@scenario("ioapic_scan_request_not_processed_mid_run", "ioapic",
          "Level pin 18 vector 0x71 dest 1 delivered (remote_irr=1, line high); vCPU0 ISR/TMR {0x72}; a run (scan). Then ONE run: the guest "
          "rewrites pin 18 to dest 0 and vector 0x72 (a scan request for vCPU0) and EOIs 0x72 right away; then a run and another EOI of 0x72 "
          "after KVM_SET_LAPIC puts it back in ISR.", tags=["guest", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(18, vector=0x71, trigger=1, dest=1)
    r.line(18, 1)
    r.lapic(0, isr=[0x72], tmr=[0x72])
    r.start()
    r.guest_access([("mmio_read", TPR, 0)], note="run (scan)")
    r.guest_access(io_write_redir(18, 0x8072, 0x00000000) + [("mmio_write", EOI, 0)], note="pin 18 -> dest 0 vector 0x72, EOI")
    r.observe("after same-run EOI")
    r.lapic(0, isr=[0x72], tmr=[0x72])
    r.guest_access([("mmio_write", EOI, 0)], note="EOI in a new run")



@scenario("ioeventfd_len2_on_iowin_hides_ioapic", "misc",
          "MMIO ioeventfd A of length 2 at 0xFEC00010 (IOWIN): the bus search for a 4-byte IOWIN access never reaches the IOAPIC, so IOWIN "
          "reads and writes exit to userspace while IOREGSEL still works; an OUT to an unclaimed port before shows what a read exit reports "
          "in kvm_run.mmio.data (io.data_offset shares those bytes).", tags=["ioeventfd", "guest"], guest=True)
def _(r):
    r.eventfd("A")
    r.start()
    r.ioeventfd("A", 0xFEC00010, 2, pio=False)
    r.guest_access([("mmio_write", SEL, 1), ("out", 0x700, 5), ("mmio_read", WIN, 0), ("mmio_write", WIN, 0x12345678),
                    ("mmio_read", WIN, 0), ("mmio_read", SEL, 0)], note="IOREGSEL, unclaimed OUT, IOWIN read/write/read, IOREGSEL read")
    r.efd_read("A")


# =====================================================================================
# probes (recorded with --probe)
# =====================================================================================
@scenario("probe_ioapic_set_irqchip_irr_all_ones", "ioapic",
          "KVM_SET_IRQCHIP(ioapic) with irr 0xFFFFFFFF and id 0xFF, all pins masked except edge pin 16 (vector 0x40 dest 0); GET back.", probe=True)
def _(r):
    r.enable_lapics()
    r.start()
    r.ioapic({16: dict(vector=0x40, dest=0)}, irr=0xFFFFFFFF, id=0xFF)
    r.line(16, 0)
    r.line(3, 0)


@scenario("probe_ioapic_unmask_with_resampler", "irqfd",
          "Level pin 21 masked (vector 0x45, dest 0) with a resampling irqfd A/RA: write A (irr latched); the guest unmasks pin 21 "
          "(kvm_notify_irqfd_resampler instead of delivery); read RA; write A again.", tags=["irqfd", "resample", "guest"], guest=True, probe=True)
def _(r):
    r.enable_lapics()
    r.redir(21, vector=0x45, trigger=1, mask=1, dest=0)
    r.eventfd("A")
    r.eventfd("RA")
    r.start()
    r.irqfd("A", 21, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_write("A")
    r.guest_access(io_write_redir(21, 0x8045), note="unmask")
    r.wait(50)
    r.efd_read("RA")
    r.efd_write("A")


@scenario("probe_pic_set_irqchip_fields", "pic",
          "KVM_SET_IRQCHIP(pic master) with irr 0x0A, imr 0, isr 0x04, last_irr 0xFF, special_mask 1, poll 1, read_reg_select 1, priority_add 7; "
          "guest reads 0x20 twice and 0x21; slave with elcr 0xFF and irr 0x81.", tags=["guest"], guest=True, probe=True)
def _(r):
    r.start()
    r.pic("master", irr=0x0A, imr=0, isr=0x04, last_irr=0xFF, special_mask=1, poll=1, read_reg_select=1, priority_add=7)
    r.pic("slave", elcr=0xFF, irr=0x81, imr=0x00)
    r.guest_access([("in", 0x20, 0), ("in", 0x20, 0), ("in", 0x21, 0), ("out", 0xA0, 0x0C), ("in", 0xA0, 0)], note="reads")
    r.line(8, 0)
    r.line(15, 1)


@scenario("probe_lapic_icr_lowest_duplicate_ldr", "lapic",
          "Flat LDR duplicates (vCPU0 and vCPU2 both bit 0, vCPU1 bit 1, vCPU3 bit 3): guest lowest-priority IPIs to logical 0x01, 0x03, 0x0B with "
          "vectors 0x80..0x86, and fixed to 0x01.", tags=["guest", "ipi"], guest=True, probe=True)
def _(r):
    for c, b in enumerate((0, 1, 0, 3)):
        r.lapic(c, enable=True, ldr=(1 << b) << 24, dfr=K.APIC_DFR_FLAT)
    r.start()
    acc = []
    for dst, vecs in ((0x01, (0x80, 0x81)), (0x03, (0x82, 0x83, 0x84)), (0x0B, (0x85, 0x86))):
        acc.append(("mmio_write", ICR2, dst << 24))
        for v in vecs:
            acc.append(("mmio_write", ICR, 0x4900 | v))
    acc += [("mmio_write", ICR2, 0x01000000), ("mmio_write", ICR, 0x4887)]
    r.guest_access(acc, note="IPIs")


@scenario("probe_ioapic_init_level_and_extint_level", "ioapic",
          "Pin 16 INIT level-triggered dest 1, pin 17 ExtINT level dest 0, pin 18 SMI level dest 2, pin 19 lowest-priority physical dest 0xFF level: "
          "raise, raise, lower each; get_mp_state(1).", probe=True)
def _(r):
    r.enable_lapics()
    r.redir(16, vector=0, delivery_mode=5, trigger=1, dest=1)
    r.redir(17, vector=0x31, delivery_mode=7, trigger=1, dest=0)
    r.redir(18, vector=0x32, delivery_mode=2, trigger=1, dest=2)
    r.redir(19, vector=0x33, delivery_mode=1, trigger=1, dest=0xFF)
    r.start()
    for p in (16, 17, 18, 19):
        r.line(p, 1)
        r.line(p, 1)
        r.line(p, 0)
    r.mp_state(1)


@scenario("probe_lapic_set_lapic_sw_disabled_lvts", "lapic",
          "KVM_SET_LAPIC writes SPIV 0x0FF (disabled) with LVT0 0x700 and LVTERR 0xF0 unmasked; guest on vCPU0 reads them, enables SPIV, "
          "reads again, disables SPIV, reads; MSI fixed to 0 while disabled.", tags=["guest"], guest=True, probe=True)
def _(r):
    r.start()
    r.lapic(0, regs={K.APIC_SPIV: 0xFF, K.APIC_LVT0: 0x700, K.APIC_LVTERR: 0xF0})
    r.guest_access([("mmio_read", LVT0, 0), ("mmio_read", 0xFEE00370, 0), ("mmio_write", SPIV, 0x1FF), ("mmio_read", LVT0, 0),
                    ("mmio_write", SPIV, 0x0FF), ("mmio_read", LVT0, 0), ("mmio_read", 0xFEE00370, 0)], note="LVTs across SPIV")
    a, d = msi(0, 0x40)
    r.msi(a, d)



@scenario("lapic_apic_base_bsp_bit_and_reserved", "lapic",
          "KVM_SET_MSRS: vCPU1 APIC base with the BSP bit (0xFEE00900), then INIT by MSI and KVM_GET_MP_STATE(1); APIC base with bit 36 set; "
          "x2APIC TPR MSR 0x808 in xAPIC mode; vCPU0 BSP bit cleared then INIT.")
def _(r):
    r.enable_lapics()
    r.start()
    r.set_msr(1, K.MSR_IA32_APICBASE, 0xFEE00900)
    a, d = msi(1, 0, dm=5)
    r.msi(a, d)
    r.mp_state(1)
    r.set_msr(2, K.MSR_IA32_APICBASE, 0x1000FEE00800)
    r.set_msr(2, 0x808, 0x20)
    r.set_msr(0, K.MSR_IA32_APICBASE, 0xFEE00800)
    a, d = msi(0, 0, dm=5)
    r.msi(a, d)
    r.mp_state(0)


@scenario("probe_resampler_shared_deassign_one", "irqfd",
          "Resampling irqfds A/RA and B/RB on level GSI 22 (vector 0x56, dest 1): write A (asserted); deassign B; observe; deassign A (line lowered); "
          "observe; re-assign A and write; lower the userspace line (it was never raised).", tags=["irqfd", "resample"], probe=True)
def _(r):
    r.enable_lapics()
    r.redir(22, vector=0x56, trigger=1, dest=1)
    for n in ("A", "RA", "B", "RB"):
        r.eventfd(n)
    r.start()
    r.irqfd("A", 22, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.irqfd("B", 22, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RB")
    r.efd_write("A")
    r.irqfd("B", 22, flags=K.KVM_IRQFD_FLAG_DEASSIGN)
    r.observe("B deassigned")
    r.irqfd("A", 22, flags=K.KVM_IRQFD_FLAG_DEASSIGN)
    r.observe("A deassigned")
    r.irqfd("A", 22, flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
    r.efd_write("A")
    r.line(22, 0)
    r.efd_read("RA")
    r.efd_read("RB")



@scenario("misc_no_irqchip_ioctls", "misc",
          "A VM without KVM_CREATE_IRQCHIP: KVM_IRQ_LINE_STATUS, KVM_IRQ_LINE, KVM_SET_GSI_ROUTING (MSI entry), KVM_SIGNAL_MSI, KVM_IRQFD on GSI 24 "
          "and a write, KVM_IOEVENTFD, KVM_GET_IRQCHIP, KVM_CREATE_IRQCHIP after the vCPUs; guest accesses to the LAPIC, IOAPIC and PIC.",
          tags=["guest", "irqfd", "ioeventfd"], guest=True, irqchip=False)
def _(r):
    r.eventfd("A")
    r.eventfd("B")
    r.start()
    r.line(3, 1)
    r.line_nostatus(3, 1)
    r.routing([K.route_msi(24, K.msi_address(0), K.msi_data(0x40))])
    a, d = msi(0, 0x41)
    r.msi(a, d)
    r.irqfd("A", 24)
    r.efd_write("A")
    r.efd_read("A")
    r.ioeventfd("B", 0x600, 1)
    ret, _raw = r.vm.get_irqchip_raw(0)
    r.raw("get_irqchip", {"chip_id": 0}, ret)
    r.raw("create_irqchip", {}, K.raw_ioctl(r.vm.fd, K.KVM_CREATE_IRQCHIP))
    r.guest_access([("mmio_read", 0xFEE00030, 0), ("mmio_write", EOI, 0), ("mmio_write", SEL, 1), ("mmio_read", WIN, 0),
                    ("out", 0x20, 0x0C), ("in", 0x20, 0), ("out", 0x600, 1), ("in", 0x4D0, 0)], note="accesses")
    r.efd_read("B")



@scenario("irqfd_pulse_lowers_userspace_level", "irqfd",
          "Level GSI 19 (vector 0x49, dest 0) raised by KVM_IRQ_LINE_STATUS (userspace source); a plain irqfd A on GSI 19 is written: its pulse "
          "(raise+lower on the same userspace source id) leaves the line low; ack+EOI (no re-delivery); same on PIC IRQ 5 made level by ELCR.",
          tags=["irqfd", "guest", "simulated_ack", "eoi"], guest=True)
def _(r):
    r.enable_lapics()
    r.redir(19, vector=0x49, trigger=1, dest=0)
    r.pic("master", elcr=0x20)
    r.eventfd("A")
    r.eventfd("B")
    r.start()
    r.line(19, 1)
    r.irqfd("A", 19)
    r.efd_write("A")
    r.observe("after pulse")
    r.simulated_ack(0, 0x49)
    r.guest_eoi()
    r.line(19, 1)
    r.line(5, 1)
    r.irqfd("B", 5)
    r.efd_write("B")
    r.line(5, 1)



@scenario("probe_sixteen_vcpus", "lapic",
          "16 vCPUs, all software-enabled, cluster DFR with LDR (cluster n//4+1, bit n%4): MSI fixed to physical 15, 0xFF; logical 0x1F, 0x4F, 0xF1; "
          "lowest-priority logical 0x2F/0x3C and physical 0xFF with vectors.", nvcpus=16, probe=True)
def _(r):
    for c in range(16):
        r.lapic(c, enable=True, ldr=((((c // 4) + 1) << 4) | (1 << (c % 4))) << 24, dfr=K.APIC_DFR_CLUSTER)
    r.start()
    for dst, v, dm, lg in ((15, 0x40, 0, 0), (0xFF, 0x41, 0, 0), (0x1F, 0x42, 0, 1), (0x4F, 0x43, 0, 1), (0xF1, 0x44, 0, 1),
                           (0x2F, 0x50, 1, 1), (0x2F, 0x51, 1, 1), (0x3C, 0x52, 1, 1), (0x3C, 0x53, 1, 1), (0xFF, 0x54, 1, 0),
                           (0xFF, 0x55, 1, 1)):
        a, d = msi(dst, v, dm=dm, logical=lg)
        r.msi(a, d)



@scenario("probe_ioeventfd_ccw_and_fast_flags", "misc",
          "KVM_IOEVENTFD with VIRTIO_CCW_NOTIFY (8) at 0x650 len 1, PIO|CCW at 0x651, flag 0x10 on a PIO entry at 0x652, CCW deassign; guest OUTs.",
          tags=["ioeventfd", "guest"], guest=True, probe=True)
def _(r):
    for n in ("A", "B", "C"):
        r.eventfd(n)
    r.start()
    for name, addr, fl in (("A", 0x650, 0x8), ("B", 0x651, 0xA), ("C", 0x652, 0x12), ("A", 0x650, 0xC), ("A", 0x650, 0x8)):
        r.log("ioeventfd", {"eventfd": name, "addr": addr, "len": 1, "pio": bool(fl & 2), "datamatch": None, "deassign": bool(fl & 4), "flags": fl},
              r._res(r.vm.ioeventfd(addr, 1, r.efds[name], fl, 0)))
    r.guest_access([("out", 0x650, 1), ("out", 0x651, 1), ("out", 0x652, 1)], note="OUTs")
    for n in ("A", "B", "C"):
        r.efd_read(n)



@scenario("ioapic_eoi_scan_mask_sw_disabled_logical", "ioapic",
          "Flat LDRs; vCPU0 software-disabled (SPIV 0xFF) with ISR/TMR 0x74. Level pin 20 logical dest 0x01 (vCPU0) vector 0x70 with remote_irr preset "
          "and the line high. The guest runs, rewrites pin 20 to vector 0x74 (FIXED, dest 0x01) and EOIs; then the same with dest 0x03.",
          tags=["guest", "eoi"], guest=True)
def _(r):
    r.flat_ldrs()
    r.lapic(0, spiv=0xFF, isr=[0x74], tmr=[0x74])
    r.ioapic({20: dict(vector=0x70, trigger=1, dest_mode=1, dest=0x01, remote_irr=1)})
    r.line(20, 1)
    r.start()
    r.guest_access([("mmio_read", TPR, 0)], note="run")
    r.guest_access(io_write_redir(20, 0x8874, 0x01000000), note="vector 0x74, logical 0x01")
    r.guest_eoi()
    r.observe("after EOI")
    r.lapic(0, isr=[0x75], tmr=[0x75])
    r.guest_access([("mmio_read", TPR, 0)], note="run")
    r.guest_access(io_write_redir(20, 0x8875, 0x03000000), note="vector 0x75, logical 0x03")
    r.guest_eoi()



def _random_scenario(seed):
    def body(r):
        import random
        rng = random.Random(seed + PROBE_SEED_BASE)
        # random LAPIC setup: flat or cluster, some disabled
        cluster = rng.random() < 0.4
        for c in range(4):
            ldr = (((c // 2) + 1) << 4 | (1 << (c % 2))) if cluster else (1 << c)
            r.lapic(c, enable=rng.random() < 0.85, ldr=ldr << 24, dfr=K.APIC_DFR_CLUSTER if cluster else K.APIC_DFR_FLAT,
                    tpr=rng.choice((0, 0, 0x20, 0x50)))
        pins = rng.sample(range(16, 24), 4) + [rng.choice((3, 4, 5, 8))]
        vecs = {}
        for p in pins:
            v = rng.choice((0x40, 0x41, 0x50, 0x51, 0x60))
            vecs[p] = v
            r.redir(p, vector=v, delivery_mode=rng.choice((0, 0, 0, 1, 4)), trigger=rng.randint(0, 1),
                    dest_mode=rng.randint(0, 1), dest=rng.choice((0, 1, 2, 3, 0x03, 0x0C, 0xFF, 0x11, 0x12)), mask=int(rng.random() < 0.2))
        if rng.random() < 0.5:
            r.pic("master", elcr=rng.choice((0x08, 0x30, 0x00)), imr=rng.choice((0x00, 0xF0, 0x08)))
        r.start()
        for _i in range(28):
            k = rng.random()
            if k < 0.45:
                r.line(rng.choice(pins), rng.choice((1, 1, 0)))
            elif k < 0.6:
                dst = rng.choice((0, 1, 2, 3, 0x03, 0x0C, 0xFF, 0x11, 0x13))
                a, d = msi(dst, rng.choice((0x40, 0x50, 0x60, 0x70)), dm=rng.choice((0, 0, 1, 4)), logical=rng.randint(0, 1),
                           level=rng.randint(0, 1))
                r.msi(a, d)
            elif k < 0.75:
                v = rng.choice(sorted(set(vecs.values())))
                r.simulated_ack(0, v)
            elif k < 0.9:
                r.guest_eoi()
            elif k < 0.95:
                p = rng.choice(pins)
                lo = (vecs[p] | (rng.randint(0, 1) << 15) | (rng.choice((0, 0, 1)) << 16))
                r.guest_access(io_write_redir(p, lo), note="rewrite pin %d" % p)
            else:
                r.lapic(rng.randint(0, 3), isr=[rng.choice(sorted(set(vecs.values())))], tmr=[rng.choice(sorted(set(vecs.values())))])
    return body


for _seed in range(12):
    scenario("probe_random_%02d" % _seed, "ioapic", "Random mix (seed %d) of IOAPIC pins, MSIs, simulated acks, guest EOIs and redirection rewrites." % _seed,
             tags=["guest", "simulated_ack", "eoi"], guest=True, probe=True)(_random_scenario(_seed))



def _random_scenario2(seed):
    def body(r):
        import random
        rng = random.Random(1000 + seed + PROBE_SEED_BASE)
        for c in range(4):
            r.lapic(c, enable=rng.random() < 0.9, ldr=(1 << c) << 24, dfr=K.APIC_DFR_FLAT)
        gsis = [3, 4, 5, 9, 10, 17, 18, 19]
        vec = {g: 0x30 + g for g in gsis}
        for g in gsis:
            r.redir(g, vector=vec[g], trigger=rng.randint(0, 1), dest=rng.choice((0, 0, 1, 0xFF)), mask=int(rng.random() < 0.4),
                    delivery_mode=rng.choice((0, 0, 1)), dest_mode=0)
        r.pic("master", elcr=rng.choice((0x08, 0x38, 0x00)), imr=rng.choice((0x00, 0x10, 0xE0)))
        r.pic("slave", elcr=rng.choice((0x02, 0x00)), imr=rng.choice((0x00, 0x04)))
        r.routing(route_default_plus(K.route_msi(24, K.msi_address(1), K.msi_data(0x70)), K.route_irqchip(30, 2, 18)))
        r.eventfd("A")
        r.eventfd("RA")
        r.eventfd("B")
        r.start()
        r.irqfd("A", rng.choice((5, 18, 19)), flags=K.KVM_IRQFD_FLAG_RESAMPLE, resample="RA")
        r.irqfd("B", rng.choice((24, 17, 3)))
        for _i in range(30):
            k = rng.random()
            if k < 0.3:
                r.line(rng.choice(gsis + [30]), rng.choice((1, 1, 0)))
            elif k < 0.4:
                r.efd_write(rng.choice(("A", "B")))
            elif k < 0.45:
                r.efd_read("RA")
            elif k < 0.55:
                r.simulated_ack(0, rng.choice(sorted(vec.values())))
            elif k < 0.65:
                r.guest_eoi()
            elif k < 0.8:
                port = rng.choice((0x20, 0xA0))
                cmd = rng.choice((0x0C, 0x20, 0x0A, 0x0B, 0x60 | rng.randint(0, 7), 0xC0 | rng.randint(0, 7), 0xA0, 0x68, 0x48))
                acc = [("out", port, cmd), ("in", port, 0)]
                r.guest_access(acc, note="PIC cmd %#x on %#x" % (cmd, port))
            elif k < 0.85:
                r.guest_access([("out", rng.choice((0x21, 0xA1)), rng.choice((0x00, 0x08, 0xFB, 0x20)))], note="OCW1")
            elif k < 0.9:
                g = rng.choice((17, 18, 19))
                r.guest_access(io_write_redir(g, vec[g] | (rng.randint(0, 1) << 15) | (rng.choice((0, 0, 1)) << 16)), note="rewrite %d" % g)
            elif k < 0.95:
                r.pic(rng.choice(("master", "slave")), isr=rng.choice((0x00, 0x08, 0x20, 0x04)))
            else:
                r.wait(20)
    return body


for _seed in range(30):
    scenario("probe_random2_%02d" % _seed, "irqfd", "Random mix (seed %d) of PIC/IOAPIC lines, irqfds, resamplefd, PIC commands, acks and EOIs." % _seed,
             tags=["guest", "irqfd", "resample"], guest=True, probe=True)(_random_scenario2(_seed))



def _random_scenario3(seed):
    def body(r):
        import random
        rng = random.Random(3000 + seed + PROBE_SEED_BASE)
        for c in range(4):
            r.lapic(c, enable=rng.random() < 0.85, ldr=(1 << c) << 24, dfr=K.APIC_DFR_FLAT)
        r.redir(18, vector=0x58, trigger=1, dest=0)
        r.redir(19, vector=0x69, trigger=1, dest_mode=1, dest=0x03)
        if rng.random() < 0.5:
            r.line(rng.choice((1, 3)), 1)
        r.start()
        vecs = (0x21, 0x34, 0x45, 0x58, 0x69, 0x7A, 0x8B, 0x9C)
        for _i in range(30):
            k = rng.random()
            if k < 0.12:
                r.lapic(0, tpr=rng.choice((0, 0x30, 0x55, 0x80)), isr=rng.sample(vecs, rng.randint(0, 2)),
                        irr=rng.sample(vecs, rng.randint(0, 2)), tmr=rng.sample(vecs, rng.randint(0, 1)))
            elif k < 0.22:
                r.guest_access([("mmio_write", TPR, rng.choice((0, 0x20, 0x46, 0x70, 0xF0))), ("mmio_read", PPR, 0)], note="TPR")
            elif k < 0.32:
                r.guest_access([("mmio_read", PPR, 0), ("mmio_read", 0xFEE00200 + 0x10 * rng.randint(0, 7), 0),
                                ("mmio_read", 0xFEE00100 + 0x10 * rng.randint(0, 7), 0)], note="reads")
            elif k < 0.45:
                r.guest_eoi()
            elif k < 0.6:
                a, d = msi(rng.choice((0, 0, 1, 0xFF, 0x01, 0x03)), rng.choice(vecs), dm=rng.choice((0, 0, 1)),
                           logical=rng.randint(0, 1), level=rng.randint(0, 1))
                r.msi(a, d)
            elif k < 0.7:
                r.simulated_ack(0, rng.choice(vecs))
            elif k < 0.78:
                r.line(rng.choice((18, 19, 1, 3)), rng.randint(0, 1))
            elif k < 0.86:
                icr = rng.choice(vecs) | rng.choice((0x0000, 0x0100, 0x0400, 0x0800, 0x8000 | 0x4000)) | rng.choice((0, 1 << 18, 2 << 18, 3 << 18))
                r.guest_access([("mmio_write", ICR2, rng.choice((0, 1, 2, 0xFF, 0x0F)) << 24), ("mmio_write", ICR, icr)], note="IPI %#x" % icr)
            elif k < 0.92:
                r.guest_access([("mmio_write", SPIV, rng.choice((0x1FF, 0x0FF, 0x13F))), ("mmio_read", SPIV, 0)], note="SPIV")
            else:
                r.guest_access([("out", 0x21, rng.choice((0x00, 0x02, 0xFF))), ("mmio_read", PPR, 0)], note="IMR + PPR")
    return body


for _seed in range(40):
    scenario("probe_random3_%02d" % _seed, "lapic", "Random mix (seed %d) of LAPIC state writes, TPR/PPR, EOIs, MSIs, IPIs and SPIV toggles." % _seed,
             tags=["guest", "simulated_ack", "eoi", "ipi"], guest=True, probe=True)(_random_scenario3(_seed))



@scenario("probe_self_nmi_ipi_timing", "lapic",
          "Guest self-NMI by ICR (0x40400) followed by three more accesses in the same run; then a run of one read; then an NMI IPI to all-including-self "
          "as the last access; then a run; then a self NMI followed by an OUT to an unclaimed port.", tags=["guest", "ipi"], guest=True, probe=True)
def _(r):
    r.enable_lapics()
    r.start()
    r.guest_access([("mmio_write", ICR, 0x40400), ("mmio_read", TPR, 0), ("mmio_read", PPR, 0), ("mmio_read", 0xFEE00030, 0)], note="self NMI then reads")
    r.guest_access([("mmio_read", TPR, 0)], note="run")
    r.observe("after")
    r.guest_access([("mmio_read", TPR, 0), ("mmio_write", ICR, 0x80400)], note="NMI all-incl-self last")
    r.guest_access([("mmio_read", TPR, 0)], note="run")
    r.guest_access([("mmio_write", ICR, 0x40400), ("out", 0x700, 1), ("mmio_read", TPR, 0)], note="self NMI then unclaimed OUT")
    r.guest_access([("mmio_read", TPR, 0)], note="run")



@scenario("probe_self_nmi_then_userspace_exit", "lapic",
          "Guest self-NMI by ICR followed by an OUT to unclaimed port 0x700 (exit to userspace, KVM_RUN again) and two reads; then a run.",
          tags=["guest", "ipi"], guest=True, probe=True)
def _(r):
    r.enable_lapics()
    r.start()
    r.guest_access([("mmio_write", ICR, 0x40400), ("out", 0x700, 1), ("mmio_read", TPR, 0), ("mmio_read", 0xFEE00030, 0)], note="self NMI, unclaimed OUT, reads")
    r.guest_access([("mmio_read", 0xFEE00030, 0)], note="run")



@scenario("probe_entry_points_within_run", "lapic",
          "Within one run: self NMI by ICR, a read, an EOI (vCPU0 ISR {0x40} preset), two reads. Then (NMI masked now) level pin 18 vector 0x71 dest 1 "
          "delivered, vCPU0 ISR/TMR {0x71}: one run that rewrites pin 18 to dest 0 and EOIs right after.", tags=["guest", "ipi", "eoi"], guest=True, probe=True)
def _(r):
    r.enable_lapics()
    r.lapic(0, isr=[0x40])
    r.redir(18, vector=0x71, trigger=1, dest=1)
    r.start()
    r.guest_access([("mmio_write", ICR, 0x40400), ("mmio_read", 0xFEE00030, 0), ("mmio_write", EOI, 0), ("mmio_read", 0xFEE00030, 0),
                    ("mmio_read", 0xFEE00030, 0)], note="self NMI, read, EOI, reads")
    r.line(18, 1)
    r.lapic(0, isr=[0x71], tmr=[0x71])
    r.guest_access([("mmio_read", TPR, 0)], note="run (scan)")
    r.guest_access([("mmio_write", SEL, 0x25), ("mmio_write", WIN, 0x00000000), ("mmio_write", EOI, 0)], note="pin 18 dest 0, EOI")



def _random_scenario4(seed):
    def body(r):
        import random
        rng = random.Random(4000 + seed + PROBE_SEED_BASE)
        r.enable_lapics()
        for g in rng.sample(range(0, 16), 4):
            r.redir(g, vector=0x30 + g, trigger=rng.randint(0, 1), dest=rng.choice((0, 1)), mask=int(rng.random() < 0.3))
        r.pic("master", elcr=rng.choice((0x00, 0x08, 0x28)), imr=rng.choice((0x00, 0x00, 0x24, 0xF8)),
              auto_eoi=int(rng.random() < 0.2), special_fully_nested_mode=int(rng.random() < 0.2), priority_add=rng.randint(0, 7))
        r.pic("slave", elcr=rng.choice((0x00, 0x02, 0x0A)), imr=rng.choice((0x00, 0x10)), auto_eoi=int(rng.random() < 0.2))
        r.start()
        for _i in range(30):
            k = rng.random()
            if k < 0.4:
                r.line(rng.randint(0, 15), rng.choice((1, 1, 0)))
            elif k < 0.75:
                port = rng.choice((0x20, 0xA0))
                cmds = rng.choice(((0x0C,), (0x0A,), (0x0B,), (0x20,), (0x60 | rng.randint(0, 7),), (0xE0 | rng.randint(0, 7),),
                                   (0xC0 | rng.randint(0, 7),), (0xA0,), (0x80,), (0x00,), (0x68,), (0x48,), (0x0E,)))
                acc = [("out", port, c) for c in cmds] + [("in", port, 0), ("in", port | 1, 0)]
                r.guest_access(acc, note="PIC %s on %#x" % ([hex(c) for c in cmds], port))
            elif k < 0.82:
                r.guest_access([("out", rng.choice((0x21, 0xA1)), rng.choice((0x00, 0x04, 0x10, 0xFB, 0xFF)))], note="OCW1")
            elif k < 0.86:
                port = rng.choice((0x20, 0xA0))
                base = 0x20 if port == 0x20 else 0x28
                icw4 = rng.choice((0x01, 0x03, 0x11))
                r.guest_access([("out", port, 0x11), ("out", port | 1, base), ("out", port | 1, 0x04 if port == 0x20 else 0x02),
                                ("out", port | 1, icw4)], note="init %#x ICW4 %#x" % (port, icw4))
            elif k < 0.9:
                r.guest_access([("out", rng.choice((0x4D0, 0x4D1)), rng.choice((0x00, 0x08, 0x28, 0xFF))), ("in", 0x4D0, 0), ("in", 0x4D1, 0)], note="ELCR")
            elif k < 0.95:
                r.pic(rng.choice(("master", "slave")), isr=rng.choice((0, 1, 4, 0x20, 0x41)))
            else:
                g = rng.randint(0, 15)
                r.simulated_ack(rng.choice((0, 1)), 0x30 + g)
    return body


for _seed in range(40):
    scenario("probe_random4_%02d" % _seed, "pic", "Random mix (seed %d) of PIC commands, init sequences, ELCR, IMR and shared GSI lines." % _seed,
             tags=["guest"], guest=True, probe=True)(_random_scenario4(_seed))



def _random_scenario5(seed):
    def body(r):
        import random
        rng = random.Random(5000 + seed + PROBE_SEED_BASE)
        r.enable_lapics()
        for g in (17, 18, 19, 20):
            r.redir(g, vector=0x40 + g, trigger=rng.randint(0, 1), dest=0, mask=int(rng.random() < 0.2))
        r.pic("master", elcr=0x20)

        def table():
            extra = []
            for g in (24, 25):
                c = rng.random()
                if c < 0.4:
                    extra.append(K.route_msi(g, K.msi_address(rng.choice((0, 1, 0xFF))), K.msi_data(0x60 + g, level_trigger=rng.randint(0, 1))))
                elif c < 0.8:
                    extra.append(K.route_irqchip(g, 2, rng.choice((17, 18, 19, 20))))
            return route_default_plus(*extra)
        r.routing(table())
        for n in ("A", "RA", "B", "RB", "C"):
            r.eventfd(n)
        r.start()
        assigned = {}
        for _i in range(28):
            k = rng.random()
            if k < 0.18:
                n = rng.choice(("A", "B", "C"))
                gsi = rng.choice((5, 18, 19, 24, 25, 20))
                if n in assigned and rng.random() < 0.6:
                    r.irqfd(n, assigned.pop(n), flags=K.KVM_IRQFD_FLAG_DEASSIGN)
                else:
                    res = ("R" + n) if n != "C" and rng.random() < 0.6 else None
                    r.irqfd(n, gsi, flags=K.KVM_IRQFD_FLAG_RESAMPLE if res else 0, resample=res)
                    assigned[n] = gsi
            elif k < 0.4:
                r.efd_write(rng.choice(("A", "B", "C")))
            elif k < 0.5:
                r.efd_read(rng.choice(("RA", "RB", "A")))
            elif k < 0.6:
                r.simulated_ack(0, rng.choice((0x51, 0x52, 0x53, 0x54, 0x78, 0x79)))
            elif k < 0.7:
                r.guest_eoi()
            elif k < 0.78:
                r.routing(table())
            elif k < 0.88:
                r.line(rng.choice((5, 18, 19, 20, 24)), rng.randint(0, 1))
            elif k < 0.94:
                r.guest_access([("out", 0x20, 0x0C), ("in", 0x20, 0)], note="PIC poll")
            else:
                r.wait(30)
    return body


for _seed in range(40):
    scenario("probe_random5_%02d" % _seed, "irqfd", "Random mix (seed %d) of irqfd assign/deassign/resample, routing changes, acks and EOIs." % _seed,
             tags=["guest", "irqfd", "resample"], guest=True, probe=True)(_random_scenario5(_seed))



def _random_scenario6(seed):
    def body(r):
        import random
        rng = random.Random(6000 + seed + PROBE_SEED_BASE)
        r.enable_lapics()
        r.start()
        for _i in range(30):
            k = rng.random()
            if k < 0.2:
                c = rng.randint(0, 3)
                mode = rng.random()
                kw = {}
                if mode < 0.3:
                    kw["apic_id"] = rng.choice((c, c, 5, 1, 0xFF, 7))
                if mode > 0.2:
                    cl = rng.random() < 0.4
                    kw["dfr"] = K.APIC_DFR_CLUSTER if cl else K.APIC_DFR_FLAT
                    kw["ldr"] = (rng.choice((0x11, 0x12, 0x21, 0x24)) if cl else rng.choice((1, 2, 4, 8, 0x80, 3))) << 24
                if rng.random() < 0.2:
                    kw["enable"] = rng.random() < 0.6
                r.lapic(c, **kw)
            elif k < 0.27:
                c = rng.randint(0, 3)
                r.set_msr(c, K.MSR_IA32_APICBASE, rng.choice((0xFEE00800, 0xFEE00800, 0xFEE00000)) | (0x100 if c == 0 else 0))
            elif k < 0.75:
                a, d = msi(rng.choice((0, 1, 2, 3, 5, 7, 0xFF, 0x01, 0x06, 0x0F, 0x11, 0x13, 0x21, 0x80)), rng.randint(0x20, 0xFE),
                           dm=rng.choice((0, 0, 1, 1, 4, 5, 6, 7, 3)), logical=rng.randint(0, 1), rh=int(rng.random() < 0.2),
                           level=rng.randint(0, 1))
                r.msi(a, d)
            elif k < 0.85:
                ents = [K.route_msi(24 + i, K.msi_address(rng.choice((0, 1, 0xFF, 0x03)), rng.randint(0, 1), rng.randint(0, 1)),
                                    K.msi_data(rng.randint(0x30, 0xEF), rng.choice((0, 1, 4)))) for i in range(2)]
                r.routing(route_default_plus(*ents))
            elif k < 0.95:
                r.line(rng.choice((24, 25)), 1)
            else:
                r.mp_state(rng.randint(0, 3))
    return body


for _seed in range(40):
    scenario("probe_random6_%02d" % _seed, "msi_routing", "Random mix (seed %d) of APIC map changes, MSIs of every mode and MSI routes." % _seed,
             probe=True)(_random_scenario6(_seed))



def _random_scenario7(seed):
    def body(r):
        import random
        rng = random.Random(7000 + seed + PROBE_SEED_BASE)
        r.enable_lapics()
        r.start()
        offs = [0x20, 0x30, 0x80, 0x90, 0xA0, 0xB0, 0xD0, 0xE0, 0xF0, 0x280, 0x2F0, 0x310, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370,
                0x390, 0x3E0, 0x3F0, 0x100, 0x200, 0x180]
        for _i in range(12):
            acc = []
            for _j in range(6):
                off = rng.choice(offs)
                if rng.random() < 0.6:
                    acc.append(("mmio_write", 0xFEE00000 + off, rng.choice((0, 0xFFFFFFFF, rng.getrandbits(32), 0x100, 0x1FF, 0x10000))))
                acc.append(("mmio_read", 0xFEE00000 + off, 0))
            r.guest_access(acc, note="LAPIC register mix")
            if rng.random() < 0.4:
                a, d = msi(rng.choice((0, 1, 0xFF, 0x01)), rng.randint(0x20, 0xFE), logical=rng.randint(0, 1), dm=rng.choice((0, 1)))
                r.msi(a, d)
    return body


for _seed in range(30):
    scenario("probe_random7_%02d" % _seed, "lapic", "Random LAPIC register writes/reads by the guest (seed %d) with MSIs in between." % _seed,
             tags=["guest"], guest=True, probe=True)(_random_scenario7(_seed))



def _random_scenario8(seed):
    def body(r):
        import random
        rng = random.Random(8000 + seed + PROBE_SEED_BASE)
        names = ["E%d" % i for i in range(8)]
        for n in names:
            r.eventfd(n)
        r.start()
        pio_addrs = (0x20, 0x21, 0x600, 0x601, 0x602, 0x604, 0x608, 0x4D0)
        mmio_addrs = (0xFEC00000, 0xFEC00010, 0xFEC000FC, 0xD0000000, 0xD0000002, 0xD0000004, 0xD0000008)
        live = []
        for _i in range(24):
            k = rng.random()
            if k < 0.5:
                pio = rng.random() < 0.5
                addr = rng.choice(pio_addrs if pio else mmio_addrs)
                ln = rng.choice((0, 1, 2, 4, 8) if pio else (0, 2, 4, 8))
                dm = rng.choice((None, None, 1, 0x5A)) if ln else None
                n = rng.choice(names)
                res = r.ioeventfd(n, addr, ln, pio=pio, datamatch=dm)
                if res["errno"] is None:
                    live.append((n, addr, ln, pio, dm))
            elif k < 0.6 and live:
                n, addr, ln, pio, dm = live.pop(rng.randrange(len(live)))
                r.ioeventfd(n, addr, ln, pio=pio, datamatch=dm, deassign=True)
            elif k < 0.9:
                acc = []
                for _j in range(4):
                    if rng.random() < 0.5:
                        acc.append(("out", rng.choice(pio_addrs), rng.choice((1, 0x5A, 0x00))))
                    else:
                        acc.append(("mmio_write", rng.choice(mmio_addrs), rng.choice((1, 0x5A, 2))))
                acc.append(("mmio_write", SEL, 1))
                acc.append(("mmio_read", WIN, 0))
                acc.append(("in", 0x21, 0))
                r.guest_access(acc, note="writes")
            else:
                r.efd_read(rng.choice(names))
        for n in names:
            r.efd_read(n)
    return body


for _seed in range(40):
    scenario("probe_random8_%02d" % _seed, "misc", "Random ioeventfd layouts on the PIO/MMIO buses (seed %d) and guest writes." % _seed,
             tags=["guest", "ioeventfd"], guest=True, probe=True)(_random_scenario8(_seed))



def _random_scenario9(seed):
    def body(r):
        import random
        rng = random.Random(9000 + seed + PROBE_SEED_BASE)
        r.flat_ldrs()
        r.start()
        vec = (0x41, 0x52, 0x63, 0x74)
        for _i in range(30):
            k = rng.random()
            if k < 0.12:
                pins = {}
                for _j in range(rng.randint(1, 3)):
                    p = rng.choice((8, 16, 17, 18, 19))
                    pins[p] = dict(vector=rng.choice(vec), delivery_mode=rng.choice((0, 0, 1, 4, 5)), trigger=rng.randint(0, 1),
                                   dest_mode=rng.randint(0, 1), dest=rng.choice((0, 1, 2, 3, 0x0F, 0xFF)), mask=int(rng.random() < 0.2),
                                   remote_irr=int(rng.random() < 0.15))
                r.ioapic(pins, irr=rng.choice((None, None, 0, 1 << 17, (1 << 18) | (1 << 8))))
            elif k < 0.35:
                g = rng.choice((8, 16, 17, 18, 19))
                if rng.random() < 0.7:
                    r.line(g, rng.choice((1, 1, 0)))
                else:
                    r.line_nostatus(g, rng.randint(0, 1))
            elif k < 0.47:
                a, d = msi(rng.choice((1, 2, 3, 0x0E, 0xFF)), rng.choice((0x10, 0x20) + vec), dm=rng.choice((0, 4, 5, 6, 6, 1)),
                           logical=rng.randint(0, 1))
                r.msi(a, d)
            elif k < 0.55:
                r.mp_state(rng.randint(1, 3))
            elif k < 0.65:
                r.simulated_ack(rng.randint(0, 3), rng.choice(vec))
            elif k < 0.75:
                r.guest_eoi()
            elif k < 0.82:
                c = rng.randint(0, 3)
                r.lapic(c, tmr=[rng.choice(vec)], isr=rng.sample(vec, rng.randint(0, 1)), clear_irr=rng.sample(vec, rng.randint(0, 2)))
            elif k < 0.87:
                c = rng.randint(1, 3)
                r.set_msr(c, K.MSR_IA32_APICBASE, rng.choice((0xFEE00800, 0xFEE00000, 0xFEE00900)))
            elif k < 0.93:
                r.observe()
            else:
                r.guest_access([("mmio_read", PPR, 0), ("mmio_read", TPR, 0)], note="run")
    return body


for _seed in range(40):
    scenario("probe_random9_%02d" % _seed, "ioapic", "Random mix (seed %d): KVM_SET_IRQCHIP IOAPIC states, lines, MSIs incl. INIT/SIPI/NMI, MP state, "
             "acks, EOIs, APIC base changes." % _seed, tags=["guest", "simulated_ack", "eoi"], guest=True, probe=True)(_random_scenario9(_seed))


# =====================================================================================
def header():
    k = K.kvm()
    caps = {}
    for n in dir(K):
        if n.startswith("KVM_CAP_"):
            caps[n] = k.check_extension(getattr(K, n))
    params = {}
    try:
        with open("/sys/module/kvm/parameters/vector_hashing") as f:
            params["kvm.vector_hashing"] = f.read().strip()
    except OSError:
        pass
    mods = []
    try:
        with open("/proc/modules") as f:
            mods = sorted(l.split()[0] for l in f if l.startswith("kvm"))
    except OSError:
        pass
    u = os.uname()
    return {"kernel": u.release, "uname": " ".join((u.sysname, u.nodename, u.release, u.version, u.machine)),
            "machine": u.machine, "kvm_api_version": k.api_version, "kvm_modules": mods, "kvm_params": params,
            "capabilities": caps, "generated_utc": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generator": "tools/golden-extra/record.py", "format_version": 1, "ioctl_smoke_test": K.smoke(),
            "host_note": "Extra scenarios recorded by the virq project with the shared recorder (harness.Run) on the same kind of host "
                         "(kvm_pvm, no APICv/AVIC). Same format as /work/shared/golden/kvm-irqchip.json."}


def record(sd):
    r = H.Run(nvcpus=sd["nvcpus"], guest=sd["guest"], irqchip=sd["irqchip"])
    try:
        sd["fn"](r)
        r.finish()
        return {"name": sd["name"], "group": sd["group"], "description": sd["description"], "kernel": os.uname().release,
                "nvcpus": sd["nvcpus"], "uses_guest": sd["guest"], "tags": sd["tags"], "in_kernel_irqchip": sd["irqchip"],
                "skipped": False, "setup": {"actions": r.setup_actions, "state": r.setup_state},
                "steps": r.steps, "final_state": r.final_state}
    finally:
        r.close()


def main():
    out = "/work/main/packages/kvm-irqchip/test/golden-extra.json"
    only = None
    args = sys.argv[1:]
    probe = "--probe" in args
    if probe:
        args.remove("--probe")
    if "--only" in args:
        i = args.index("--only")
        only = set(args[i + 1].split(","))
        del args[i:i + 2]
    if args:
        out = args[0]
    scen = []
    for sd in SCENARIOS:
        if only and sd["name"] not in only:
            continue
        if sd["probe"] != probe and not only:
            continue
        try:
            scen.append(record(sd))
            print("recorded", sd["name"], file=sys.stderr)
        except Exception:
            print("FAILED", sd["name"], file=sys.stderr)
            traceback.print_exc()
    doc = {"header": header(), "scenarios": scen}
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote %d scenarios to %s (%d bytes)" % (len(scen), out, os.path.getsize(out)), file=sys.stderr)


if __name__ == "__main__":
    main()
