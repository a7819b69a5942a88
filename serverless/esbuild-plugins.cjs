// esbuild plugins for `sls package` (serverless-esbuild). The npm `zookeeper` client loads its native
// addon through node-gyp-build, which searches the file system at run time and cannot work inside a
// bundle. This plugin replaces that lookup with a direct require of the built addon; esbuild's `copy`
// loader for `.node` then puts the binary next to the bundle in the function's zip.
const { dirname, join } = require('node:path');

const zookeeperNative = {
  name: 'zookeeper-native-addon',
  setup(build) {
    build.onResolve({ filter: /^node-gyp-build$/ }, (args) => {
      if (!args.importer.includes(`${join('node_modules', 'zookeeper')}`)) return undefined;
      return { path: 'zookeeper-addon', namespace: 'zookeeper-native' };
    });
    build.onLoad({ filter: /.*/, namespace: 'zookeeper-native' }, () => {
      const addonDir = join(dirname(require.resolve('zookeeper/package.json')), 'build', 'Release');
      return {
        contents: "module.exports = () => require('./zookeeper.node');",
        resolveDir: addonDir,
        loader: 'js',
      };
    });
  },
};

module.exports = [zookeeperNative];
