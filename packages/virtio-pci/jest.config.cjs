module.exports = { ...require('../../jest.preset.cjs'), displayName: '@virq/virtio-pci' };
